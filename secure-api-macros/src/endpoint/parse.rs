//! Parsing `#[secure_endpoint(...)]` into [`Args`], one function per option. Syntax errors
//! and unknown or duplicate options are recorded and parsing goes on.

use proc_macro2::{TokenStream, TokenTree};
use syn::meta::ParseNestedMeta;
use syn::parse::{ParseStream, Parser};
use syn::punctuated::Punctuated;
use syn::{Ident, LitBool, LitInt, LitStr, Token};

use super::model::{
    AUTH_KEYS, Args, Cond, IDEMPOTENT_KEYS, IdempotentArgs, METHODS, OPTION_KEYS, Opt, PermItem,
    Route, Tier,
};
use crate::common::{path_text, skip_value};
use crate::ctxt::Ctxt;
use crate::suggest;

pub fn args(cx: &Ctxt, tokens: TokenStream) -> Args {
    let mut args = Args::default();
    let parser = syn::meta::parser(|meta| option(cx, &meta, &mut args));
    if let Err(e) = parser.parse2(tokens) {
        cx.syn_error(e);
    }
    args
}

/// Whether the attribute's tokens name a route (`post(...)`, or even a malformed `post = ..`),
/// read without parsing the options, so that the error fallback takes the routed shape
/// even when a syntax error stopped the parser before the route.
pub fn names_a_route(tokens: &TokenStream) -> bool {
    let mut starts_option = true;
    tokens.clone().into_iter().any(|token| {
        let route = starts_option
            && matches!(&token, TokenTree::Ident(i) if METHODS.contains(&i.to_string().as_str()));
        starts_option = matches!(&token, TokenTree::Punct(p) if p.as_char() == ',');
        route
    })
}

/// One option, handed to the function that parses its key.
fn option(cx: &Ctxt, meta: &ParseNestedMeta<'_>, args: &mut Args) -> syn::Result<()> {
    let Some(key) = meta.path.get_ident().cloned() else {
        return unknown(cx, meta, "option", OPTION_KEYS);
    };
    match key.to_string().as_str() {
        method if METHODS.contains(&method) => route(cx, meta, key, &mut args.route),
        "rate" => string(cx, meta, key, &mut args.rate),
        "burst" => number(cx, meta, key, &mut args.burst),
        "algorithm" => string(cx, meta, key, &mut args.algorithm),
        "tier" => tiers(cx, meta, key, &mut args.tiers),
        "key" => string(cx, meta, key, &mut args.key),
        "cost" => number(cx, meta, key, &mut args.cost),
        "max_body" => string(cx, meta, key, &mut args.max_body),
        "idempotent" => idempotent(cx, meta, key, &mut args.idempotent),
        "auth" => auth(cx, meta, key, &mut args.auth),
        "public" => public(cx, meta, key, &mut args.public),
        "on_store_error" => string(cx, meta, key, &mut args.on_store_error),
        "crate" => krate(cx, meta, key, &mut args.krate),
        _ => unknown(cx, meta, "option", OPTION_KEYS),
    }
}

/// Records an unknown key (named in full, `a::b` too, with the nearest of `keys` suggested)
/// at its path, and skips its value.
fn unknown(cx: &Ctxt, meta: &ParseNestedMeta<'_>, what: &str, keys: &[&str]) -> syn::Result<()> {
    cx.error_spanned_by(
        &meta.path,
        suggest::unknown(what, &path_text(&meta.path), keys),
    );
    skip_value(meta)
}

/// Stores an option, or records a duplicate.
fn set<T>(cx: &Ctxt, slot: &mut Option<Opt<T>>, key: Ident, value: T) {
    if slot.is_some() {
        cx.error_spanned_by(&key, format!("duplicate `{key}` option; give it once"));
    } else {
        *slot = Some(Opt { key, value });
    }
}

/// `post("/api/users")`.
fn route(
    cx: &Ctxt,
    meta: &ParseNestedMeta<'_>,
    method: Ident,
    slot: &mut Option<Route>,
) -> syn::Result<()> {
    if !meta.input.peek(syn::token::Paren) {
        cx.error_spanned_by(
            &method,
            format!("a route needs a path: `{method}(\"/api/users\")`"),
        );
        return skip_value(meta);
    }
    let content;
    syn::parenthesized!(content in meta.input);
    if !content.peek(LitStr) {
        let found: TokenStream = content.parse()?;
        let at = if found.is_empty() {
            quote::ToTokens::to_token_stream(&method)
        } else {
            found
        };
        cx.error_spanned_by(
            at,
            format!("a route path is a string: `{method}(\"/api/users\")`"),
        );
        return Ok(());
    }
    let path: LitStr = content.parse()?;
    if slot.is_some() {
        cx.error_spanned_by(
            &method,
            "an endpoint has one route; register the handler again with another `#[secure_endpoint]` function for more",
        );
    } else {
        *slot = Some(Route { method, path });
    }
    Ok(())
}

/// The expression after `key =`; without `=`, records `missing` at the key, skips whatever
/// follows and returns `None`.
fn assigned(
    cx: &Ctxt,
    meta: &ParseNestedMeta<'_>,
    key: &Ident,
    missing: &str,
) -> syn::Result<Option<syn::Expr>> {
    if !meta.input.peek(Token![=]) {
        cx.error_spanned_by(key, missing);
        skip_value(meta)?;
        return Ok(None);
    }
    meta.value()?.parse().map(Some)
}

/// `key = "..."`: `rate`, `algorithm`, `key`, `max_body`, `on_store_error`, and
/// `idempotent`'s `ttl` and `wait`.
fn string(
    cx: &Ctxt,
    meta: &ParseNestedMeta<'_>,
    key: Ident,
    slot: &mut Option<Opt<LitStr>>,
) -> syn::Result<()> {
    let missing = format!("`{key}` needs a value: `{key} = \"...\"`");
    match assigned(cx, meta, &key, &missing)? {
        Some(syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Str(lit),
            ..
        })) => set(cx, slot, key, lit),
        Some(other) => {
            cx.error_spanned_by(other, format!("`{key}` takes a string: `{key} = \"...\"`"));
        }
        None => {}
    }
    Ok(())
}

/// `key = N`: `burst`, `cost`.
fn number(
    cx: &Ctxt,
    meta: &ParseNestedMeta<'_>,
    key: Ident,
    slot: &mut Option<Opt<LitInt>>,
) -> syn::Result<()> {
    let missing = format!("`{key}` needs a number: `{key} = 10`");
    match assigned(cx, meta, &key, &missing)? {
        Some(syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Int(lit),
            ..
        })) => set(cx, slot, key, lit),
        Some(syn::Expr::Unary(minus)) if matches!(minus.op, syn::UnOp::Neg(_)) => {
            cx.error_spanned_by(minus, format!("`{key}` must be a positive whole number"));
        }
        Some(other) => {
            cx.error_spanned_by(other, format!("`{key}` takes a whole number: `{key} = 10`"));
        }
        None => {}
    }
    Ok(())
}

/// `tier(anonymous = "10/s", premium = "1000/s")`.
fn tiers(
    cx: &Ctxt,
    meta: &ParseNestedMeta<'_>,
    key: Ident,
    slot: &mut Option<Opt<Vec<Tier>>>,
) -> syn::Result<()> {
    if !meta.input.peek(syn::token::Paren) {
        cx.error_spanned_by(
            &key,
            "`tier` lists per-tier rates: `tier(anonymous = \"10/s\", premium = \"1000/s\")`",
        );
        return skip_value(meta);
    }
    let mut tiers = Vec::new();
    meta.parse_nested_meta(|t| tier(cx, &t, &mut tiers))?;
    set(cx, slot, key, tiers);
    Ok(())
}

/// One `name = "N/unit"` of `tier(...)`.
fn tier(cx: &Ctxt, meta: &ParseNestedMeta<'_>, tiers: &mut Vec<Tier>) -> syn::Result<()> {
    let Some(name) = meta.path.get_ident().cloned() else {
        cx.error_spanned_by(
            &meta.path,
            "a tier name is a single identifier, such as `premium`",
        );
        return skip_value(meta);
    };
    if !meta.input.peek(Token![=]) {
        cx.error_spanned_by(&name, format!("give the tier a rate: `{name} = \"100/s\"`"));
        return skip_value(meta);
    }
    let rate: LitStr = meta.value()?.parse()?;
    tiers.push(Tier { name, rate });
    Ok(())
}

/// `idempotent` or `idempotent(ttl = "24h", required = true, wait = "2s")`.
fn idempotent(
    cx: &Ctxt,
    meta: &ParseNestedMeta<'_>,
    key: Ident,
    slot: &mut Option<Opt<IdempotentArgs>>,
) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        cx.error_spanned_by(
            &key,
            "write `idempotent` or `idempotent(ttl = \"24h\", required = true, wait = \"2s\")`",
        );
        return skip_value(meta);
    }
    let mut args = IdempotentArgs::default();
    if meta.input.peek(syn::token::Paren) {
        meta.parse_nested_meta(|m| idempotent_option(cx, &m, &mut args))?;
    }
    set(cx, slot, key, args);
    Ok(())
}

/// One option of `idempotent(...)`.
fn idempotent_option(
    cx: &Ctxt,
    meta: &ParseNestedMeta<'_>,
    args: &mut IdempotentArgs,
) -> syn::Result<()> {
    const WHAT: &str = "`idempotent` option";
    let Some(key) = meta.path.get_ident().cloned() else {
        return unknown(cx, meta, WHAT, IDEMPOTENT_KEYS);
    };
    match key.to_string().as_str() {
        "on_store_error" => always_fails_closed(
            cx,
            meta,
            &key,
            "idempotent",
            "idempotency always fails closed when its store cannot answer (a 503 problem): running the handler unchecked could run it twice",
        ),
        "ttl" => string(cx, meta, key, &mut args.ttl),
        "required" => required(cx, meta, key, &mut args.required),
        "wait" => string(cx, meta, key, &mut args.wait),
        _ => unknown(cx, meta, WHAT, IDEMPOTENT_KEYS),
    }
}

/// `on_store_error` inside `idempotent(...)` or `auth(...)`: not an option there, refused
/// with the reason (`why`) rather than a list of names.
fn always_fails_closed(
    cx: &Ctxt,
    meta: &ParseNestedMeta<'_>,
    key: &Ident,
    option: &str,
    why: &str,
) -> syn::Result<()> {
    cx.error_spanned_by(
        key,
        format!(
            "unknown `{option}` option `on_store_error`: {why}; `on_store_error = \"allow\"` is for rate limits only, written as an option of its own: `#[secure_endpoint(..., on_store_error = \"allow\")]`"
        ),
    );
    skip_value(meta)
}

/// `required = true` or `required = false`.
fn required(
    cx: &Ctxt,
    meta: &ParseNestedMeta<'_>,
    key: Ident,
    slot: &mut Option<Opt<LitBool>>,
) -> syn::Result<()> {
    const HOW: &str = "write `required = true` or `required = false`";
    match assigned(cx, meta, &key, HOW)? {
        Some(syn::Expr::Lit(syn::ExprLit {
            lit: syn::Lit::Bool(lit),
            ..
        })) => set(cx, slot, key, lit),
        Some(other) => cx.error_spanned_by(other, HOW),
        None => {}
    }
    Ok(())
}

/// `public`.
fn public(
    cx: &Ctxt,
    meta: &ParseNestedMeta<'_>,
    key: Ident,
    slot: &mut Option<Opt<()>>,
) -> syn::Result<()> {
    if !meta.input.is_empty() && !meta.input.peek(Token![,]) {
        cx.error_spanned_by(&key, "`public` takes no arguments");
        skip_value(meta)?;
    }
    set(cx, slot, key, ());
    Ok(())
}

/// `crate = "path"` (or a bare path).
fn krate(
    cx: &Ctxt,
    meta: &ParseNestedMeta<'_>,
    key: Ident,
    slot: &mut Option<Opt<syn::Path>>,
) -> syn::Result<()> {
    let value = meta.value()?;
    let path = if value.peek(LitStr) {
        value.parse::<LitStr>()?.parse()?
    } else {
        value.parse()?
    };
    set(cx, slot, key, path);
    Ok(())
}

const BASIC_AUTH: &str = "basic auth sends a reusable password with every request and is not supported; secure-api requires bearer JWTs: write `auth` (or `auth(roles(...))`) and configure `SecureApi::builder().jwt(...)`";

/// Keys that ask for basic auth inside `auth(...)`.
const BASIC_AUTH_KEYS: &[&str] = &["basic", "scheme", "username", "password"];

/// `auth` or `auth(condition, ...)`.
fn auth(
    cx: &Ctxt,
    meta: &ParseNestedMeta<'_>,
    key: Ident,
    slot: &mut Option<Opt<Vec<Cond>>>,
) -> syn::Result<()> {
    if meta.input.peek(Token![=]) {
        let value: syn::Expr = meta.value()?.parse()?;
        let text = quote::ToTokens::to_token_stream(&value)
            .to_string()
            .to_lowercase();
        if text.contains("basic") {
            cx.error_spanned_by(&value, BASIC_AUTH);
        } else {
            cx.error_spanned_by(
                &value,
                "write `auth` for any authenticated caller, or `auth(roles(\"admin\"))`, `auth(permissions(\"users:delete\"))`",
            );
        }
        return Ok(());
    }
    let mut conds = Vec::new();
    if meta.input.peek(syn::token::Paren) {
        meta.parse_nested_meta(|m| cond(cx, &m, &mut conds))?;
    }
    set(cx, slot, key, conds);
    Ok(())
}

/// One condition of `auth(...)`, `any(...)` or `all(...)`.
fn cond(cx: &Ctxt, meta: &ParseNestedMeta<'_>, out: &mut Vec<Cond>) -> syn::Result<()> {
    const WHAT: &str = "`auth` option";
    let Some(key) = meta.path.get_ident().cloned() else {
        return unknown(cx, meta, WHAT, AUTH_KEYS);
    };
    let name = key.to_string();
    if BASIC_AUTH_KEYS.contains(&name.as_str()) {
        cx.error_spanned_by(&key, BASIC_AUTH);
        return skip_value(meta);
    }
    if name == "on_store_error" {
        return always_fails_closed(
            cx,
            meta,
            &key,
            "auth",
            "authentication always fails closed when its store cannot answer (a 503 problem): skipping the revocation check could let revoked tokens in",
        );
    }
    if !AUTH_KEYS.contains(&name.as_str()) {
        return unknown(cx, meta, WHAT, AUTH_KEYS);
    }
    if !meta.input.peek(syn::token::Paren) {
        cx.error_spanned_by(&key, format!("`{name}` needs a list: `{name}(...)`"));
        return skip_value(meta);
    }
    out.push(match name.as_str() {
        "roles" => Cond::Roles(key, list(meta, role)?),
        "permissions" => Cond::Permissions(key, list(meta, permission)?),
        "any" => Cond::Any(key, inner_conds(cx, meta)?),
        _ => Cond::All(key, inner_conds(cx, meta)?),
    });
    Ok(())
}

/// The conditions inside `any(...)` or `all(...)`; empty parentheses give none.
fn inner_conds(cx: &Ctxt, meta: &ParseNestedMeta<'_>) -> syn::Result<Vec<Cond>> {
    let mut inner = Vec::new();
    crate::common::nested(meta, |m| cond(cx, &m, &mut inner))?;
    Ok(inner)
}

/// `(item, item, ...)` after a key, each read by `item`.
fn list<T>(
    meta: &ParseNestedMeta<'_>,
    item: fn(ParseStream<'_>) -> syn::Result<T>,
) -> syn::Result<Vec<T>> {
    let content;
    syn::parenthesized!(content in meta.input);
    Ok(
        Punctuated::<T, Token![,]>::parse_terminated_with(&content, item)?
            .into_iter()
            .collect(),
    )
}

/// A role of `roles(...)`: a string.
fn role(input: ParseStream<'_>) -> syn::Result<LitStr> {
    if input.peek(LitStr) {
        input.parse()
    } else {
        Err(input.error("a role is a string: `roles(\"admin\")`"))
    }
}

/// A permission of `permissions(...)`: a string, or a typed enum variant.
fn permission(input: ParseStream<'_>) -> syn::Result<PermItem> {
    if input.peek(LitStr) {
        input.parse().map(PermItem::Name)
    } else {
        input.parse().map(PermItem::Typed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The messages recorded while parsing `tokens` as the attribute's arguments.
    fn messages(tokens: &str) -> Vec<String> {
        let cx = Ctxt::new();
        args(&cx, tokens.parse().expect("tokens"));
        match cx.check() {
            Ok(()) => Vec::new(),
            Err(errors) => errors.into_iter().map(|e| e.to_string()).collect(),
        }
    }

    fn is_unknown(messages: &[String]) -> bool {
        messages.iter().any(|m| m.starts_with("unknown"))
    }

    /// The tables that unknown-key messages list are exactly the keys parsed.
    #[test]
    fn every_listed_key_is_parsed() {
        for key in OPTION_KEYS {
            assert!(!is_unknown(&messages(key)), "option `{key}`");
        }
        for key in IDEMPOTENT_KEYS {
            let m = messages(&format!("idempotent({key})"));
            assert!(!is_unknown(&m), "idempotent option `{key}`");
        }
        for key in AUTH_KEYS {
            let m = messages(&format!("auth({key}(\"a\"))"));
            assert!(!is_unknown(&m), "auth option `{key}`");
        }
    }

    #[test]
    fn unknown_keys_are_named_in_full() {
        let starts = |tokens: &str, message: &str| {
            let found = messages(tokens);
            assert!(found[0].starts_with(message), "{tokens}: {found:?}");
        };
        starts(
            "rat = \"1/s\"",
            "unknown option `rat`; did you mean `rate`?",
        );
        starts("limits::rate = \"1/s\"", "unknown option `limits::rate`;");
        starts(
            "idempotent(store::ttl = \"1h\")",
            "unknown `idempotent` option `store::ttl`;",
        );
        starts(
            "auth(jwt::roles(\"a\"))",
            "unknown `auth` option `jwt::roles`;",
        );
    }

    /// `on_store_error` is a rate-limit option; inside `idempotent(...)` and `auth(...)` it
    /// is refused with the reason.
    #[test]
    fn on_store_error_is_refused_for_idempotency_and_auth() {
        let idem = messages("idempotent(on_store_error = \"allow\")");
        assert_eq!(idem.len(), 1, "{idem:?}");
        assert!(
            idem[0].starts_with(
                "unknown `idempotent` option `on_store_error`: idempotency always fails closed"
            ),
            "{idem:?}"
        );
        let auth = messages("auth(on_store_error = \"allow\")");
        assert_eq!(auth.len(), 1, "{auth:?}");
        assert!(
            auth[0].starts_with(
                "unknown `auth` option `on_store_error`: authentication always fails closed"
            ),
            "{auth:?}"
        );
        assert!(messages("on_store_error = \"allow\"").is_empty());
    }

    #[test]
    fn a_route_is_seen_without_parsing() {
        let routed = |tokens: &str| names_a_route(&tokens.parse().expect("tokens"));
        assert!(routed("post(\"/a\")"));
        assert!(routed("burst = \"x\", rate = \"1/s\", delete(\"/a\")"));
        assert!(routed("get = \"/a\""));
        assert!(!routed("rate = \"1/s\", key = get"));
        assert!(!routed("auth(any(get(\"a\")))"));
    }
}
