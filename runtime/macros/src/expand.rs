//! Turns `async fn f() -> T { body }` into `fn f() -> T { <build runtime>.block_on(async move { body }) }`.

use proc_macro2::{Group, Ident, Span, TokenStream, TokenTree};
use quote::{quote, quote_spanned, ToTokens};
use syn::spanned::Spanned;
use syn::{Error, ReturnType};

use crate::args::{self, Config, Errors, Flavor, MemoryLimit, AUTO_FRACTION};
use crate::item::AsyncFn;

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Main,
    Test,
}

impl Kind {
    fn attr(self) -> &'static str {
        match self {
            Kind::Main => "memkit_async::main",
            Kind::Test => "memkit_async::test",
        }
    }
}

pub(crate) fn expand(kind: Kind, args: TokenStream, item: TokenStream) -> TokenStream {
    let func = match AsyncFn::parse(item.clone(), kind.attr()) {
        Ok(func) => func,
        Err(e) => return with_error(item, e),
    };
    let (config, arg_errors) = args::parse(args);
    let mut errors = Errors(arg_errors);
    check_signature(kind, &func, &mut errors);
    // Expand even when something is wrong: the user then sees only our error, not a
    // cascade of "main is async" or unresolved-name errors, and IDEs keep working.
    let tokens = generate(kind, &config, func, errors.0.is_some());
    match errors.0 {
        Some(e) => with_error(tokens, e),
        None => tokens,
    }
}

fn check_signature(kind: Kind, func: &AsyncFn, errors: &mut Errors) {
    let sig = &func.sig;
    if sig.asyncness.is_none() {
        errors.push(Error::new(
            sig.fn_token.span,
            "the `async` keyword is missing from the function declaration",
        ));
    }
    match kind {
        // Other functions may take arguments: they are moved into the `async` block.
        Kind::Main if sig.ident == "main" && !sig.inputs.is_empty() => {
            errors.push(Error::new_spanned(
                &sig.inputs,
                "the `main` function cannot accept arguments",
            ));
        }
        Kind::Test if !sig.inputs.is_empty() => {
            errors.push(Error::new_spanned(
                &sig.inputs,
                "test functions cannot accept arguments",
            ));
        }
        Kind::Test => {
            if let Some(attr) = func.attrs.iter().find(|a| is_test_attr(a.path())) {
                errors.push(Error::new_spanned(
                    attr,
                    "a second test attribute is supplied; `#[memkit_async::test]` already adds `#[test]`",
                ));
            }
        }
        Kind::Main => {}
    }
}

/// `#[test]`, `#[core::prelude::v1::test]` and the like.
fn is_test_attr(path: &syn::Path) -> bool {
    let last_is_test = path.segments.last().is_some_and(|s| s.ident == "test");
    let root_ok = path.segments.len() == 1
        || path
            .segments
            .first()
            .is_some_and(|s| s.ident == "core" || s.ident == "std");
    last_is_test && root_ok
}

fn generate(kind: Kind, config: &Config, func: AsyncFn, failed: bool) -> TokenStream {
    let AsyncFn {
        attrs,
        vis,
        mut sig,
        inner_attrs,
        body,
    } = func;
    sig.asyncness = None;

    let worker_threads = config
        .worker_threads
        .as_ref()
        .map(|n| quote_spanned!(n.span()=> .worker_threads(#n)));
    // Only emitted when asked for, so code that does not use it never depends on it.
    let memory_limit = config.memory_limit.as_ref().map(|limit| match limit {
        MemoryLimit::Bytes(limit) => quote_spanned!(limit.span()=> .memory_limit(#limit)),
        MemoryLimit::Auto(span) => {
            let fraction = AUTO_FRACTION;
            quote_spanned!(*span=> .memory_limit_from_cgroup(#fraction))
        }
    });

    let start_paused = config
        .start_paused
        .as_ref()
        .map(|b| quote_spanned!(b.span()=> .start_paused(#b)));

    // Spanning the runtime call from the start to the end of the last statement makes a
    // mismatch between the body's value and the declared return type underline that
    // statement, as it would without the attribute.
    let (start, end) = last_stmt_spans(&body);
    let new = match config.flavor {
        Some(Flavor::CurrentThread) => "new_current_thread",
        Some(Flavor::MultiThread) | None => "new",
    };
    let new = Ident::new(new, start);
    let builder = match &config.crate_path {
        Some(path) => quote!(#path::runtime::Builder::#new()),
        None => quote_spanned!(start=> ::memkit_async::runtime::Builder::#new()),
    };
    // Mixed-site hygiene: a user variable or argument named `body` cannot clash with ours.
    let fut = Ident::new("body", Span::mixed_site().located_at(end));
    let async_block = quote_spanned!(body.span()=> async move #body);

    // Each test would otherwise monomorphize `block_on` for its own future type; erasing
    // it to one `dyn Future` per output type keeps big test suites quick to compile.
    let erase = (kind == Kind::Test).then(|| {
        let output = match &sig.output {
            ReturnType::Default => quote!(()),
            ReturnType::Type(_, ty) => ty.to_token_stream(),
        };
        quote_spanned! {end=>
            let #fut = ::core::pin::pin!(#fut);
            let #fut: ::core::pin::Pin<&mut dyn ::core::future::Future<Output = #output>> = #fut;
        }
    });
    let test_attr = match kind {
        Kind::Main => None,
        // The build fails anyway; without `#[test]`, rustc does not repeat a signature
        // error in its own words.
        Kind::Test if failed => Some(quote!(#[allow(dead_code)])),
        Kind::Test => Some(quote!(#[::core::prelude::v1::test])),
    };

    let run = quote_spanned! {end=>
        // `return` so that a body ending in a diverging expression still type-checks.
        #[allow(clippy::expect_used, clippy::diverging_sub_expression, clippy::needless_return)]
        {
            return #builder
                #worker_threads
                #memory_limit
                #start_paused
                .build()
                .expect("failed to build the memkit-async runtime")
                .block_on(#fut);
        }
    };

    quote! {
        #test_attr
        #(#attrs)*
        #vis #sig {
            #(#inner_attrs)*
            let #fut = #async_block;
            #erase
            #run
        }
    }
}

/// The spans of the first and last tokens of the body's last statement, found by the
/// top-level `;` (good enough for error spans; the body is not parsed).
fn last_stmt_spans(body: &Group) -> (Span, Span) {
    let tokens: Vec<TokenTree> = body.stream().into_iter().collect();
    let Some(last) = tokens.last() else {
        return (body.span_close(), body.span_close());
    };
    let is_semi = |t: &TokenTree| matches!(t, TokenTree::Punct(p) if p.as_char() == ';');
    let before_last = tokens.len() - usize::from(is_semi(last));
    let first = tokens[..before_last]
        .iter()
        .rposition(is_semi)
        .map_or(0, |i| i + 1);
    (tokens.get(first).unwrap_or(last).span(), last.span())
}

fn with_error(mut tokens: TokenStream, error: Error) -> TokenStream {
    tokens.extend(error.to_compile_error());
    tokens
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(kind: Kind, args: TokenStream, item: TokenStream) -> String {
        expand(kind, args, item).to_string()
    }

    #[test]
    fn main_without_arguments() {
        let out = render(
            Kind::Main,
            quote!(),
            quote!(
                pub async fn main() -> Result<(), String> {
                    Ok(())
                }
            ),
        );
        assert!(
            out.starts_with("pub fn main () -> Result < () , String > {"),
            "{out}"
        );
        assert!(out.contains("let body = async move { Ok (()) } ;"), "{out}");
        assert!(
            out.contains(":: memkit_async :: runtime :: Builder :: new () . build ()"),
            "{out}"
        );
        assert!(out.contains(". block_on (body)"), "{out}");
        assert!(!out.contains("compile_error"), "{out}");
        assert!(!out.contains("test"), "{out}");
    }

    #[test]
    fn main_with_all_arguments() {
        let out = render(
            Kind::Main,
            quote!(worker_threads = 2, memory_limit = 1 << 20, crate = "rt"),
            quote!(
                async fn main() {}
            ),
        );
        assert!(
            out.contains(
                "rt :: runtime :: Builder :: new () . worker_threads (2usize) . memory_limit (1 << 20) . build ()"
            ),
            "{out}"
        );
    }

    #[test]
    fn current_thread_flavor() {
        let out = render(
            Kind::Test,
            quote!(flavor = "current_thread", memory_limit = 1 << 20),
            quote!(
                async fn t() {}
            ),
        );
        assert!(
            out.contains(
                ":: memkit_async :: runtime :: Builder :: new_current_thread () . memory_limit (1 << 20) . build ()"
            ),
            "{out}"
        );
    }

    #[test]
    fn memory_limit_auto_reads_the_cgroup() {
        let out = render(
            Kind::Main,
            quote!(memory_limit = "auto"),
            quote!(
                async fn main() {}
            ),
        );
        assert!(
            out.contains(". memory_limit_from_cgroup (0.8f64) . build ()"),
            "{out}"
        );
    }

    #[test]
    fn test_gets_the_test_attribute_and_an_erased_future() {
        let out = render(
            Kind::Test,
            quote!(),
            quote!(
                #[should_panic]
                async fn t() {
                    panic!()
                }
            ),
        );
        assert!(
            out.starts_with("# [:: core :: prelude :: v1 :: test] # [should_panic] fn t () {"),
            "{out}"
        );
        assert!(out.contains("Future < Output = () >"), "{out}");
    }

    #[test]
    fn inner_attributes_stay_on_the_function() {
        let out = render(
            Kind::Main,
            quote!(),
            quote!(
                async fn main() {
                    #![allow(unused)]
                    let x = 1;
                }
            ),
        );
        assert!(
            out.contains("{ # ! [allow (unused)] let body = async move { let x = 1 ; } ;"),
            "{out}"
        );
    }

    #[test]
    fn errors_still_expand() {
        let out = render(
            Kind::Main,
            quote!(worker_threads = 0),
            quote!(
                fn main() {}
            ),
        );
        assert!(out.starts_with("fn main () {"), "{out}");
        assert!(out.contains("`worker_threads` must be at least 1"), "{out}");
        assert!(out.contains("the `async` keyword is missing"), "{out}");
    }

    #[test]
    fn signature_errors() {
        let main = render(
            Kind::Main,
            quote!(),
            quote!(
                async fn main(x: u8) {}
            ),
        );
        assert!(main.contains("the `main` function cannot accept arguments"));
        let other = render(
            Kind::Main,
            quote!(),
            quote!(
                async fn run(x: u8) {}
            ),
        );
        assert!(!other.contains("compile_error"), "{other}");
        let test = render(
            Kind::Test,
            quote!(),
            quote!(
                async fn t(x: u8) {}
            ),
        );
        assert!(test.contains("test functions cannot accept arguments"));
        let twice = render(
            Kind::Test,
            quote!(),
            quote!(
                #[test]
                async fn t() {}
            ),
        );
        assert!(twice.contains("a second test attribute"));
    }

    #[test]
    fn not_a_function_is_returned_unchanged() {
        let out = render(
            Kind::Main,
            quote!(),
            quote!(
                struct S;
            ),
        );
        assert!(out.starts_with("struct S ;"), "{out}");
        assert!(
            out.contains("can only be applied to an `async fn`"),
            "{out}"
        );
    }
}
