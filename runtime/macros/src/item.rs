//! The annotated function, with its body kept as raw tokens.
//!
//! The body is not parsed: rustc then reports errors in it exactly as it would without
//! the attribute, and an incomplete body (while typing in an IDE) still expands.

use proc_macro2::{Delimiter, Group, TokenStream};
use syn::parse::{ParseStream, Parser};
use syn::{braced, Abi, Attribute, Error, Result, Signature, Token, Visibility};

pub(crate) struct AsyncFn {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) sig: Signature,
    /// `#![...]` at the top of the body; they must stay on the function body because
    /// an `async` block does not accept inner attributes.
    pub(crate) inner_attrs: Vec<Attribute>,
    /// The statements inside the braces, spanned as the user wrote them.
    pub(crate) body: Group,
}

impl AsyncFn {
    /// `attr` names the attribute in the message for an item that is not a function.
    pub(crate) fn parse(tokens: TokenStream, attr: &str) -> Result<Self> {
        let parser = |input: ParseStream| {
            let attrs = input.call(Attribute::parse_outer)?;
            let vis = input.parse()?;
            if !starts_fn(input) {
                return Err(Error::new(
                    input.span(),
                    format!("`#[{attr}]` can only be applied to an `async fn`"),
                ));
            }
            let sig = input.parse()?;
            let content;
            let brace = braced!(content in input);
            let inner_attrs = content.call(Attribute::parse_inner)?;
            let mut body = Group::new(Delimiter::Brace, content.parse()?);
            body.set_span(brace.span.join());
            Ok(AsyncFn {
                attrs,
                vis,
                sig,
                inner_attrs,
                body,
            })
        };
        parser.parse2(tokens)
    }
}

/// Whether the next tokens are `[const] [async] [unsafe] [extern "abi"] fn`.
fn starts_fn(input: ParseStream) -> bool {
    let fork = input.fork();
    let _ = fork.parse::<Option<Token![const]>>();
    let _ = fork.parse::<Option<Token![async]>>();
    let _ = fork.parse::<Option<Token![unsafe]>>();
    let _ = fork.parse::<Option<Abi>>();
    fork.peek(Token![fn])
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    #[test]
    fn keeps_the_pieces() {
        let f = AsyncFn::parse(
            quote! {
                /// docs
                #[inline]
                pub(crate) async fn run(x: u8) -> Result<(), String> {
                    #![allow(unused)]
                    let y = x; Ok(())
                }
            },
            "main",
        )
        .unwrap();
        assert_eq!(f.attrs.len(), 2);
        assert_eq!(f.inner_attrs.len(), 1);
        assert!(f.sig.asyncness.is_some());
        assert_eq!(f.sig.ident, "run");
        assert_eq!(f.body.stream().to_string(), "let y = x ; Ok (())");
    }

    #[test]
    fn body_is_not_parsed() {
        assert!(AsyncFn::parse(quote!(async fn main() { let x = ; }), "main").is_ok());
    }

    #[test]
    fn rejects_items_that_are_not_functions() {
        for item in [
            quote!(
                struct S;
            ),
            quote!(
                const X: u8 = 1;
            ),
            quote!(
                pub mod m {}
            ),
        ] {
            let e = AsyncFn::parse(item, "memkit_async::main").err().unwrap();
            assert_eq!(
                e.to_string(),
                "`#[memkit_async::main]` can only be applied to an `async fn`"
            );
        }
    }
}
