//! The router served by `http_server` (on memkit) and by its tokio twin in the HTTP benchmark:
//! the same handlers on both, so the runtimes are compared on equal work.

use axum::body::Body;
use axum::http::{header, HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::BodyExt;
use serde::Serialize;

/// The largest upload `POST /upload` takes.
pub const MAX_UPLOAD: usize = 16 << 20;

/// `GET /` (a short text), `GET /json` (about 1 KiB of JSON), `POST /upload` (reads the whole
/// body; answers its length and FNV-1a checksum).
pub fn router() -> Router {
    Router::new()
        .route("/", get(|| async { "Hello from memkit-async!\n" }))
        .route("/json", get(|| async { Json(catalog()) }))
        .route("/upload", post(upload))
}

#[derive(Serialize)]
pub struct Item {
    id: u32,
    name: String,
    price_cents: u64,
    tags: [&'static str; 3],
    in_stock: bool,
}

#[derive(Serialize)]
pub struct Catalog {
    store: &'static str,
    currency: &'static str,
    items: Vec<Item>,
}

/// A catalogue whose JSON is about 1 KiB; built per request, like a handler reading a store.
pub fn catalog() -> Catalog {
    Catalog {
        store: "memkit demo store",
        currency: "EUR",
        items: (0..8)
            .map(|i| Item {
                id: 1000 + i,
                name: format!("item number {i} of the demo catalogue"),
                price_cents: 199 + u64::from(i) * 250,
                tags: ["async", "bounded-memory", "demo"],
                in_stock: i % 3 != 0,
            })
            .collect(),
    }
}

#[derive(Serialize)]
pub struct Uploaded {
    pub length: usize,
    pub fnv1a64: String,
}

/// FNV-1a, 64 bits.
pub fn fnv1a64(data: &[u8]) -> u64 {
    data.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

async fn upload(
    headers: HeaderMap,
    mut body: Body,
) -> Result<Json<Uploaded>, (StatusCode, String)> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok())
        .unwrap_or(0);
    if declared > MAX_UPLOAD {
        return Err(too_large());
    }
    // The whole body in one buffer, sized once from the declared length.
    let mut data = Vec::with_capacity(declared);
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| (StatusCode::BAD_REQUEST, format!("body: {e}\n")))?;
        if let Ok(chunk) = frame.into_data() {
            if data.len() + chunk.len() > MAX_UPLOAD {
                return Err(too_large());
            }
            data.extend_from_slice(&chunk);
        }
    }
    Ok(Json(Uploaded {
        length: data.len(),
        fnv1a64: format!("{:016x}", fnv1a64(&data)),
    }))
}

fn too_large() -> (StatusCode, String) {
    (
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("uploads are limited to {MAX_UPLOAD} bytes\n"),
    )
}

/// A setting from the environment, or its default.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}
