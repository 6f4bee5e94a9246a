//! Overload load for the HTTP benchmark: `N` concurrent `POST /upload` of `SIZE` bytes each,
//! every one on its own connection, and a count of how each ended: a status code (200, 503,
//! ...), a connection reset, or another error. Bounded: each request has 60 s.
//!
//! ```text
//! http_overload ADDR [CONCURRENT=512] [SIZE=4194304]
//! ```

use futures::io::{AsyncReadExt, AsyncWriteExt};
use memkit_async::net::TcpStream;
use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Status(u16, bool),
    Reset,
    TimedOut,
    Error(String),
}

async fn upload(addr: String, body: Arc<Vec<u8>>) -> Outcome {
    let attempt = async {
        let mut conn = TcpStream::connect(addr.as_str()).await?;
        let head = format!(
            "POST /upload HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/octet-stream\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        conn.write_all(head.as_bytes()).await?;
        conn.write_all(&body).await?;
        let mut response = Vec::new();
        conn.read_to_end(&mut response).await?;
        Ok::<_, io::Error>(response)
    };
    match memkit_async::time::timeout(Duration::from_secs(60), attempt).await {
        Err(_) => Outcome::TimedOut,
        Ok(Err(e))
            if matches!(
                e.kind(),
                io::ErrorKind::ConnectionReset | io::ErrorKind::BrokenPipe
            ) =>
        {
            Outcome::Reset
        }
        Ok(Err(e)) => Outcome::Error(e.kind().to_string()),
        Ok(Ok(response)) => {
            let text = String::from_utf8_lossy(&response);
            let status = text
                .strip_prefix("HTTP/1.1 ")
                .and_then(|rest| rest.get(..3))
                .and_then(|code| code.parse().ok());
            match status {
                // For a 503, whether its body says why.
                Some(code) => Outcome::Status(code, text.contains("memory limit")),
                None => Outcome::Error(format!("unparsable response of {} bytes", response.len())),
            }
        }
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:3000".into());
    let concurrent: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(512);
    let size: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(4 << 20);
    let rt = memkit_async::Builder::new()
        .worker_threads(1)
        .build()
        .unwrap();
    let start = Instant::now();
    let outcomes = rt.block_on(async move {
        let body = Arc::new((0..size).map(|i| (i * 31 % 251) as u8).collect::<Vec<u8>>());
        let tasks: Vec<_> = (0..concurrent)
            .map(|_| memkit_async::spawn(upload(addr.clone(), body.clone())))
            .collect();
        let mut outcomes = BTreeMap::new();
        for task in tasks {
            let outcome = task.await.unwrap_or_else(|e| Outcome::Error(e.to_string()));
            *outcomes.entry(outcome).or_insert(0usize) += 1;
        }
        outcomes
    });
    let elapsed = start.elapsed();
    let mut line = Vec::new();
    for (outcome, n) in &outcomes {
        line.push(match outcome {
            Outcome::Status(code, true) if *code != 200 => format!("{code} (memory limit): {n}"),
            Outcome::Status(code, _) => format!("{code}: {n}"),
            Outcome::Reset => format!("reset: {n}"),
            Outcome::TimedOut => format!("timed out: {n}"),
            Outcome::Error(e) => format!("error ({e}): {n}"),
        });
    }
    println!(
        "{concurrent} x POST /upload of {size} bytes in {:.2} s: {}",
        elapsed.as_secs_f64(),
        line.join(", ")
    );
}
