//! The attribute arguments: `flavor = "..."`, `worker_threads = N`, `memory_limit = EXPR`,
//! `start_paused = BOOL`,
//! `crate = "path"`.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Error, Expr, ExprLit, Ident, Lit, LitBool, LitInt, Path, Result, Token};

const ACCEPTED: &str =
    "expected one of `flavor`, `worker_threads`, `memory_limit`, `start_paused`, `crate`";

/// The runtime settings the attribute asked for; `None` keeps the builder's default.
#[derive(Default)]
pub(crate) struct Config {
    pub(crate) flavor: Option<Flavor>,
    pub(crate) worker_threads: Option<LitInt>,
    pub(crate) memory_limit: Option<MemoryLimit>,
    pub(crate) start_paused: Option<LitBool>,
    pub(crate) crate_path: Option<Path>,
}

/// `flavor = "current_thread"` or `flavor = "multi_thread"`.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Flavor {
    CurrentThread,
    MultiThread,
}

/// `memory_limit = BYTES`, or `memory_limit = "auto"` for a share of the container's limit.
pub(crate) enum MemoryLimit {
    Bytes(Expr),
    Auto(proc_macro2::Span),
}

/// The share of the cgroup's limit that `memory_limit = "auto"` gives the runtime: the rest is
/// headroom for memory no budget sees (thread stacks, socket buffers, mapped files).
pub(crate) const AUTO_FRACTION: f64 = 0.8;

/// One `name = value` pair. The value is optional here so that a bare `name`
/// gets a message about that name rather than a generic "expected `=`".
struct Arg {
    name: Ident,
    value: Option<Expr>,
}

impl Parse for Arg {
    fn parse(input: ParseStream) -> Result<Self> {
        // `parse_any` because `crate` is a keyword.
        let name = input.call(Ident::parse_any).map_err(|e| {
            Error::new(
                e.span(),
                format!("expected an argument such as `worker_threads = 4`; {ACCEPTED}"),
            )
        })?;
        let value = match input.parse::<Option<Token![=]>>()? {
            Some(_) => Some(input.parse()?),
            None => None,
        };
        Ok(Arg { name, value })
    }
}

/// Parses the arguments, keeping every valid one so that the expansion stays close to
/// what was meant, and gathering every problem into one error.
pub(crate) fn parse(args: TokenStream) -> (Config, Option<Error>) {
    let mut config = Config::default();
    let parsed = match Punctuated::<Arg, Token![,]>::parse_terminated.parse2(args) {
        Ok(parsed) => parsed,
        Err(e) => return (config, Some(e)),
    };
    let mut errors = Errors::default();
    let mut seen: Vec<String> = Vec::new();
    for Arg { name, value } in parsed {
        let key = name.unraw().to_string();
        if !matches!(
            key.as_str(),
            "flavor" | "worker_threads" | "memory_limit" | "start_paused" | "crate"
        ) {
            errors.push(Error::new(name.span(), unknown(&key)));
            continue;
        }
        if seen.contains(&key) {
            errors.push(Error::new(
                name.span(),
                format!("duplicate argument `{key}`"),
            ));
            continue;
        }
        seen.push(key.clone());
        let Some(value) = value else {
            errors.push(Error::new(
                name.span(),
                format!("`{key}` needs a value, e.g. {}", example(&key)),
            ));
            continue;
        };
        let applied = match key.as_str() {
            "flavor" => flavor(&value).map(|f| config.flavor = Some(f)),
            "worker_threads" => worker_threads(&value).map(|n| config.worker_threads = Some(n)),
            "memory_limit" => memory_limit(value).map(|m| config.memory_limit = Some(m)),
            "start_paused" => start_paused(&value).map(|b| config.start_paused = Some(b)),
            _ => crate_path(&value).map(|p| config.crate_path = Some(p)),
        };
        if let Err(e) = applied {
            errors.push(e);
        }
    }
    if let (Some(Flavor::CurrentThread), Some(n)) = (config.flavor, &config.worker_threads) {
        errors.push(Error::new(
            n.span(),
            "`worker_threads` is not allowed with `flavor = \"current_thread\"`: that runtime \
             runs every task on the thread that calls it; remove `worker_threads`, or use \
             `flavor = \"multi_thread\"`",
        ));
    }
    (config, errors.0)
}

fn unknown(key: &str) -> String {
    format!("unknown argument `{key}`; {ACCEPTED}")
}

fn flavor(value: &Expr) -> Result<Flavor> {
    let msg = |got: &str| {
        format!(
            "`flavor = {got}`: expected `\"current_thread\"` (every task on the calling thread) \
             or `\"multi_thread\"` (worker threads, the default)"
        )
    };
    match ungroup(value) {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => match s.value().as_str() {
            "current_thread" => Ok(Flavor::CurrentThread),
            "multi_thread" => Ok(Flavor::MultiThread),
            other => Err(Error::new(s.span(), msg(&format!("\"{other}\"")))),
        },
        other => Err(Error::new_spanned(
            value,
            msg(&other.to_token_stream().to_string()),
        )),
    }
}

fn example(key: &str) -> &'static str {
    match key {
        "flavor" => "`flavor = \"current_thread\"`",
        "worker_threads" => "`worker_threads = 4`",
        "memory_limit" => "`memory_limit = 512 << 20` or `memory_limit = \"auto\"`",
        "start_paused" => "`start_paused = true`",
        _ => "`crate = \"memkit_async\"`",
    }
}

fn memory_limit(value: Expr) -> Result<MemoryLimit> {
    match ungroup(&value) {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) if s.value() == "auto" => Ok(MemoryLimit::Auto(s.span())),
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Err(Error::new(
            s.span(),
            format!(
                "`memory_limit = \"{}\"`: expected a byte count such as `512 << 20`, or \
                 `\"auto\"` for {}% of the container's cgroup memory limit",
                s.value(),
                (AUTO_FRACTION * 100.0) as u32
            ),
        )),
        _ => Ok(MemoryLimit::Bytes(value)),
    }
}

/// Validated at expansion time so that `0` or a typo fails the build, not the first run.
/// Re-emitted with a `usize` suffix so a literal like `4u8` still fits the builder.
fn worker_threads(value: &Expr) -> Result<LitInt> {
    let Expr::Lit(ExprLit {
        lit: Lit::Int(int), ..
    }) = ungroup(value)
    else {
        return Err(Error::new_spanned(
            value,
            "`worker_threads` must be an integer literal, e.g. `worker_threads = 4`",
        ));
    };
    match int.base10_parse::<usize>()? {
        0 => Err(Error::new(
            int.span(),
            "`worker_threads` must be at least 1",
        )),
        n => Ok(LitInt::new(&format!("{n}usize"), int.span())),
    }
}

/// A literal, so a typo fails the build.
fn start_paused(value: &Expr) -> Result<LitBool> {
    match ungroup(value) {
        Expr::Lit(ExprLit {
            lit: Lit::Bool(b), ..
        }) => Ok(b.clone()),
        _ => Err(Error::new_spanned(
            value,
            "`start_paused` must be `true` or `false`, e.g. `start_paused = true`",
        )),
    }
}

fn crate_path(value: &Expr) -> Result<Path> {
    let msg = "`crate` must be a string holding a path, e.g. `crate = \"memkit_async\"`";
    match ungroup(value) {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => s.parse().map_err(|_| Error::new(s.span(), msg)),
        _ => Err(Error::new_spanned(value, msg)),
    }
}

/// Values passed through a `macro_rules!` fragment arrive wrapped in an invisible group.
fn ungroup(mut value: &Expr) -> &Expr {
    while let Expr::Group(group) = value {
        value = &group.expr;
    }
    value
}

/// Collects errors so that the user sees all of them in one build.
#[derive(Default)]
pub(crate) struct Errors(pub(crate) Option<Error>);

impl Errors {
    pub(crate) fn push(&mut self, error: Error) {
        match &mut self.0 {
            Some(first) => first.combine(error),
            None => self.0 = Some(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::{quote, ToTokens};

    fn ok(args: TokenStream) -> Config {
        let (config, error) = parse(args);
        assert!(error.is_none(), "unexpected error: {}", error.unwrap());
        config
    }

    fn err(args: TokenStream) -> String {
        let (_, error) = parse(args);
        let error = error.expect("an error");
        error
            .into_iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn empty_keeps_defaults() {
        let config = ok(quote!());
        assert!(config.worker_threads.is_none());
        assert!(config.memory_limit.is_none());
        assert!(config.start_paused.is_none());
        assert!(config.crate_path.is_none());
    }

    #[test]
    fn all_arguments() {
        let config = ok(quote!(
            worker_threads = 4u8,
            memory_limit = 512 << 20,
            start_paused = true,
            crate = "my::rt",
        ));
        assert!(config.start_paused.as_ref().unwrap().value);
        assert_eq!(config.worker_threads.unwrap().to_string(), "4usize");
        assert_eq!(
            match config.memory_limit.unwrap() {
                MemoryLimit::Bytes(e) => e.to_token_stream().to_string(),
                MemoryLimit::Auto(_) => "auto".to_string(),
            },
            "512 << 20"
        );
        assert_eq!(
            config.crate_path.unwrap().to_token_stream().to_string(),
            "my :: rt"
        );
    }

    #[test]
    fn worker_threads_is_validated() {
        assert_eq!(
            err(quote!(worker_threads = 0)),
            "`worker_threads` must be at least 1"
        );
        assert!(err(quote!(worker_threads = "4")).contains("must be an integer literal"));
        assert!(err(quote!(worker_threads = n)).contains("must be an integer literal"));
        assert!(err(quote!(worker_threads)).contains("needs a value"));
    }

    #[test]
    fn unknown_and_duplicate_are_all_reported() {
        let msg = err(quote!(threads = 2, worker_threads = 1, worker_threads = 2));
        assert!(msg.contains("unknown argument `threads`"), "{msg}");
        assert!(msg.contains(ACCEPTED), "{msg}");
        assert!(msg.contains("duplicate argument `worker_threads`"), "{msg}");
        assert!(err(quote!(flavor = "local")).contains("expected `\"current_thread\"`"));
        assert!(err(quote!(flavor = current_thread)).contains("`flavor = current_thread`"));
        assert!(err(quote!(flavor = "current_thread", worker_threads = 2))
            .contains("`worker_threads` is not allowed with `flavor = \"current_thread\"`"));
    }

    #[test]
    fn flavors() {
        assert_eq!(
            ok(quote!(flavor = "current_thread")).flavor,
            Some(Flavor::CurrentThread)
        );
        let multi = ok(quote!(flavor = "multi_thread", worker_threads = 2));
        assert_eq!(multi.flavor, Some(Flavor::MultiThread));
        assert_eq!(multi.worker_threads.unwrap().to_string(), "2usize");
    }

    #[test]
    fn start_paused_is_a_bool_literal() {
        assert!(!ok(quote!(start_paused = false)).start_paused.unwrap().value);
        assert!(err(quote!(start_paused = "yes")).contains("must be `true` or `false`"));
        assert!(err(quote!(start_paused = 1)).contains("must be `true` or `false`"));
        assert!(err(quote!(start_paused)).contains("`start_paused = true`"));
    }

    #[test]
    fn bad_syntax() {
        assert!(err(quote!(4)).contains("expected an argument"));
        assert!(err(quote!(crate = 3)).contains("`crate` must be a string"));
        assert!(err(quote!(crate = "not a path")).contains("`crate` must be a string"));
        let msg = err(quote!(memory_limit = "512m"));
        assert!(
            msg.contains("expected a byte count such as `512 << 20`"),
            "{msg}"
        );
        assert!(
            msg.contains("80% of the container's cgroup memory limit"),
            "{msg}"
        );
    }
}
