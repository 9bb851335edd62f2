//! Checking `#[secure_endpoint]`: every misconfiguration of the options and of the
//! handler, reported together. One function per option; [`endpoint`] puts them together.

use std::collections::HashSet;

use quote::ToTokens;
use syn::{FnArg, Ident, ItemFn, LitInt, LitStr, Type};

use super::model::{
    ALGORITHMS, Args, Auth, Cond, Endpoint, Idempotency, IdempotentArgs, KEYS, Limit,
    ON_STORE_ERROR, Opt, PermItem, RateValue, Route, Tier,
};
use crate::ctxt::Ctxt;
use crate::limits::{DEFAULT_TTL_MS, MAX_WINDOW_COUNT};
use crate::{suggest, units};

/// actix extracts at most this many arguments.
const MAX_ARGS: usize = 16;

/// The endpoint the options and the handler describe, every misuse recorded in `cx`. With
/// errors, only `func` and `krate` are meaningful (the error fallback uses nothing else).
pub fn endpoint<'a>(cx: &Ctxt, args: Args, func: &'a ItemFn) -> Endpoint<'a> {
    handler(cx, func);
    let route = args.route.as_ref().and_then(|r| route(cx, r));
    let sliding = args
        .algorithm
        .as_ref()
        .is_some_and(|a| sliding_window(cx, a));
    let limit = limit(cx, &args, sliding);
    let cost = args.cost.as_ref().and_then(|c| positive(cx, c));
    let tiers = args
        .tiers
        .as_ref()
        .map(|t| tiers(cx, t, sliding))
        .unwrap_or_default();
    if let (Some(opt), Some(cost)) = (&args.cost, cost) {
        affordable(cx, &opt.value, cost, &limit, &tiers);
    }
    let key = args.key.as_ref().map_or("Auto", |k| key(cx, k));
    let max_body = args.max_body.as_ref().and_then(|m| max_body(cx, m));
    let idempotency = args
        .idempotent
        .as_ref()
        .map(|i| idempotent(cx, i, args.route.as_ref()));
    let on_store_error = args
        .on_store_error
        .as_ref()
        .and_then(|o| on_store_error(cx, o, &limit, &tiers));
    let auth = auth(cx, args.auth, args.public);
    Endpoint {
        func,
        route,
        limit,
        sliding,
        tiers,
        key,
        cost: cost.unwrap_or(1),
        max_body,
        krate: args.krate.map(|k| k.value),
        idempotency,
        auth,
        on_store_error,
        arg_types: arg_types(func),
    }
}

/// The route's method and path, when the path is well formed.
fn route(cx: &Ctxt, route: &Route) -> Option<(String, String)> {
    path(cx, &route.path).then(|| (route.method.to_string(), route.path.value()))
}

/// `algorithm = "..."`: whether it is the sliding window.
fn sliding_window(cx: &Ctxt, algorithm: &Opt<LitStr>) -> bool {
    match algorithm.value.value().as_str() {
        "gcra" => false,
        "sliding_window" => true,
        other => {
            cx.error_spanned_by(
                &algorithm.value,
                suggest::unknown("algorithm", other, ALGORITHMS),
            );
            false
        }
    }
}

/// `rate`, with `burst`: the endpoint's own limit, and the options that need one.
fn limit(cx: &Ctxt, args: &Args, sliding: bool) -> Limit {
    let Some(rate) = &args.rate else {
        without_rate(cx, args);
        return Limit::Default;
    };
    if rate.value.value() == "unlimited" {
        unlimited(cx, args);
        return Limit::Unlimited;
    }
    let rate = parse_rate(cx, &rate.value, sliding);
    let burst = args.burst.as_ref().and_then(|b| positive(cx, b));
    if let (true, Some(b)) = (sliding, &args.burst) {
        cx.error_spanned_by(
            &b.key,
            "`burst` applies to `algorithm = \"gcra\"`; a sliding window allows at most its count in any window",
        );
    }
    match rate {
        Some(rate) => Limit::Rate {
            rate,
            burst,
            sliding,
        },
        // The error is recorded: this value is never expanded.
        None => Limit::Default,
    }
}

/// Without `rate` the endpoint's base limit is the app's default policy, which `burst` and
/// `algorithm` cannot change: refuse them rather than drop them silently.
fn without_rate(cx: &Ctxt, args: &Args) {
    if let Some(b) = &args.burst {
        cx.error_spanned_by(
            &b.key,
            "`burst` applies to the endpoint's own `rate`, and this endpoint has none (it uses the app's default rate); add `rate = \"N/unit\"` or remove `burst`",
        );
    }
    if let (Some(a), None) = (&args.algorithm, &args.tiers) {
        cx.error_spanned_by(
            &a.key,
            "`algorithm` applies to the endpoint's own `rate` and `tier(...)` rates, and this endpoint has neither (it uses the app's default rate); add `rate = \"N/unit\"` or remove `algorithm`",
        );
    }
}

/// `rate = "unlimited"`: the options of a limit have nothing to apply to.
fn unlimited(cx: &Ctxt, args: &Args) {
    let keys = [
        args.burst.as_ref().map(|o| &o.key),
        args.cost.as_ref().map(|o| &o.key),
        args.algorithm.as_ref().map(|o| &o.key),
        args.key.as_ref().map(|o| &o.key),
    ];
    for key in keys.into_iter().flatten() {
        cx.error_spanned_by(
            key,
            format!("`{key}` has no effect with `rate = \"unlimited\"`; remove it or give a rate"),
        );
    }
}

/// `tier(...)`: each tier's rate; empty lists and duplicate tiers are refused.
fn tiers(cx: &Ctxt, opt: &Opt<Vec<Tier>>, sliding: bool) -> Vec<(String, RateValue)> {
    if opt.value.is_empty() {
        cx.error_spanned_by(
            &opt.key,
            "`tier()` is empty; list tiers such as `tier(premium = \"1000/s\")`",
        );
    }
    let mut seen = HashSet::new();
    let mut tiers = Vec::new();
    for tier in &opt.value {
        let name = tier.name.to_string();
        if !seen.insert(name.clone()) {
            cx.error_spanned_by(&tier.name, format!("duplicate tier `{name}`"));
        } else if let Some(rate) = parse_rate(cx, &tier.rate, sliding) {
            tiers.push((name, rate));
        }
    }
    tiers
}

/// `cost`: a cost no client can ever pay would refuse every request. The base limit holds
/// its `burst` (GCRA) or its count (sliding window); a tier's policy has no burst of its
/// own, so it holds its count.
fn affordable(cx: &Ctxt, lit: &LitInt, cost: u32, limit: &Limit, tiers: &[(String, RateValue)]) {
    if let Limit::Rate {
        rate,
        burst,
        sliding,
    } = limit
    {
        let capacity = if *sliding {
            rate.count
        } else {
            burst.unwrap_or(rate.count)
        };
        if cost > capacity {
            cx.error_spanned_by(
                lit,
                format!("`cost = {cost}` is more than the {capacity} a client can ever have, so every request would be refused"),
            );
        }
    }
    for (name, rate) in tiers.iter().filter(|(_, rate)| cost > rate.count) {
        cx.error_spanned_by(
            lit,
            format!("`cost = {cost}` is more than the {} a client of tier `{name}` can ever have, so every request of that tier would be refused; lower `cost` or raise the tier's rate", rate.count),
        );
    }
}

/// `key = "..."`: the name of the runtime's `KeyKind` variant.
fn key(cx: &Ctxt, key: &Opt<LitStr>) -> &'static str {
    match key.value.value().as_str() {
        "ip" => "Ip",
        "principal" => "Principal",
        "ip_and_principal" => "IpAndPrincipal",
        other => {
            cx.error_spanned_by(&key.value, suggest::unknown("key", other, KEYS));
            "Auto"
        }
    }
}

/// `on_store_error = "..."`: the name of the runtime's `OnStoreError` variant. It decides
/// what the rate limit does, so an endpoint without one (`rate = "unlimited"` and no tiers)
/// has nothing for it to decide.
fn on_store_error(
    cx: &Ctxt,
    opt: &Opt<LitStr>,
    limit: &Limit,
    tiers: &[(String, RateValue)],
) -> Option<&'static str> {
    if matches!(limit, Limit::Unlimited) && tiers.is_empty() {
        cx.error_spanned_by(
            &opt.key,
            "`on_store_error` has no effect with `rate = \"unlimited\"`: it chooses what the rate limit does when its store fails, and idempotency and authentication always fail closed; remove it or give a rate",
        );
    }
    match opt.value.value().as_str() {
        "fail_closed" => Some("FailClosed"),
        "allow" => Some("Allow"),
        other => {
            let message = if matches!(other, "fail_open" | "open") {
                format!(
                    "unknown `on_store_error` policy `{other}`; did you mean `allow`? it lets requests through without a limit while the store fails; expected one of: `fail_closed`, `allow`"
                )
            } else {
                suggest::unknown("`on_store_error` policy", other, ON_STORE_ERROR)
            };
            cx.error_spanned_by(&opt.value, message);
            None
        }
    }
}

/// `max_body = "16KiB"`: bytes.
fn max_body(cx: &Ctxt, max_body: &Opt<LitStr>) -> Option<u64> {
    units::size(&max_body.value.value())
        .map_err(|msg| cx.error_spanned_by(&max_body.value, msg))
        .ok()
}

/// `auth(...)` and `public`, which conflict.
fn auth(cx: &Ctxt, auth: Option<Opt<Vec<Cond>>>, public: Option<Opt<()>>) -> Auth {
    match (auth, public) {
        (Some(auth), public) => {
            if let Some(public) = public {
                cx.error_spanned_by(
                    &public.key,
                    "`public` means no authentication and conflicts with `auth`; keep one",
                );
            }
            conds(cx, &auth.value);
            Auth::Required(auth.value)
        }
        (None, Some(_)) => Auth::Public,
        (None, None) => Auth::Optional,
    }
}

/// The conditions of `auth(...)`, `any(...)` and `all(...)`.
fn conds(cx: &Ctxt, list: &[Cond]) {
    for cond in list {
        match cond {
            Cond::Roles(key, names) => roles(cx, key, names),
            Cond::Permissions(key, perms) => permissions(cx, key, perms),
            Cond::Any(key, inner) | Cond::All(key, inner) => {
                if inner.is_empty() {
                    cx.error_spanned_by(key, format!("`{key}()` is empty; list conditions such as `{key}(roles(\"admin\"), permissions(\"users:delete\"))`"));
                }
                conds(cx, inner);
            }
        }
    }
}

/// `roles(...)`: at least one, each a valid role, none twice.
fn roles(cx: &Ctxt, key: &Ident, roles: &[LitStr]) {
    if roles.is_empty() {
        cx.error_spanned_by(key, "`roles()` is empty; name at least one role, or write `auth` alone for any authenticated caller");
    }
    let mut seen = HashSet::new();
    for role in roles {
        let v = role.value();
        if !is_identifier(&v, false) {
            cx.error_spanned_by(role, format!("`{v}` is not a valid role: use letters, digits, `_` and `-`, starting with a letter (at most 64)"));
        } else if !seen.insert(v.clone()) {
            cx.error_spanned_by(role, format!("duplicate role `{v}`"));
        }
    }
}

/// `permissions(...)`: at least one, each string a valid permission, none twice. Typed
/// permissions are checked by the compiler.
fn permissions(cx: &Ctxt, key: &Ident, perms: &[PermItem]) {
    if perms.is_empty() {
        cx.error_spanned_by(key, "`permissions()` is empty; name at least one permission, such as `permissions(\"users:delete\")`");
    }
    let mut seen = HashSet::new();
    for perm in perms {
        let PermItem::Name(lit) = perm else { continue };
        let v = lit.value();
        if !is_identifier(&v, true) {
            cx.error_spanned_by(lit, format!("`{v}` is not a valid permission: `resource:action` segments of letters, digits, `_`, `-` and `.`, separated by `:`"));
        } else if !seen.insert(v.clone()) {
            cx.error_spanned_by(lit, format!("duplicate permission `{v}`"));
        }
    }
}

/// Roles: `[A-Za-z][A-Za-z0-9_-]*`; permissions: such names joined by `:`, also allowing `.`.
fn is_identifier(s: &str, permission: bool) -> bool {
    let segment_ok = |seg: &str| {
        seg.starts_with(|c: char| c.is_ascii_alphabetic())
            && seg.chars().all(|c| {
                c.is_ascii_alphanumeric() || c == '_' || c == '-' || (permission && c == '.')
            })
    };
    !s.is_empty()
        && s.len() <= 64
        && if permission {
            s.split(':').all(segment_ok)
        } else {
            segment_ok(s)
        }
}

/// The longest duration an `idempotent` option allows, and how to say it.
struct Longest {
    ms: u64,
    said: &'static str,
}

/// Longest replay window: 30 days.
const MAX_TTL: Longest = Longest {
    ms: 30 * 86_400_000,
    said: "30 days (\"30day\")",
};
/// Longest wait for an in-flight request: 30 seconds.
const MAX_WAIT: Longest = Longest {
    ms: 30_000,
    said: "30 seconds (\"30s\")",
};

/// `idempotent(...)`: on a route that can change state, with a `ttl` and a shorter `wait`.
fn idempotent(cx: &Ctxt, opt: &Opt<IdempotentArgs>, route: Option<&Route>) -> Idempotency {
    if let Some(route) = route {
        refuse_safe_method(cx, &opt.key, &route.method);
    }
    let args = &opt.value;
    let ttl_ms = args
        .ttl
        .as_ref()
        .and_then(|t| duration(cx, t, &MAX_TTL))
        .unwrap_or(DEFAULT_TTL_MS);
    let wait_ms = args
        .wait
        .as_ref()
        .and_then(|w| duration(cx, w, &MAX_WAIT))
        .unwrap_or(0);
    if let Some(w) = &args.wait
        && wait_ms >= ttl_ms
    {
        cx.error_spanned_by(&w.value, "`wait` must be shorter than `ttl`");
    }
    Idempotency {
        ttl_ms,
        required: args.required.as_ref().is_none_or(|r| r.value.value),
        wait_ms,
    }
}

/// `idempotent` on a GET, HEAD or OPTIONS route, whose requests are idempotent already.
fn refuse_safe_method(cx: &Ctxt, idempotent: &Ident, method: &Ident) {
    let method = method.to_string().to_uppercase();
    if matches!(method.as_str(), "GET" | "HEAD" | "OPTIONS") {
        cx.error_spanned_by(
            idempotent,
            format!(
                "`idempotent` does not apply to {method} routes: {method} requests are safe and idempotent already; use it on `post` or `patch`"
            ),
        );
    }
}

/// `ttl` or `wait`: milliseconds, at most `longest`.
fn duration(cx: &Ctxt, opt: &Opt<LitStr>, longest: &Longest) -> Option<u64> {
    match units::duration(&opt.value.value()) {
        Ok(ms) if ms > longest.ms => {
            let message = format!("`{}` is at most {}", opt.key, longest.said);
            cx.error_spanned_by(&opt.value, message);
            None
        }
        Ok(ms) => Some(ms),
        Err(msg) => {
            cx.error_spanned_by(&opt.value, msg);
            None
        }
    }
}

fn parse_rate(cx: &Ctxt, lit: &syn::LitStr, sliding: bool) -> Option<RateValue> {
    match units::rate(&lit.value()) {
        Ok((count, secs)) => {
            if sliding && count > MAX_WINDOW_COUNT {
                cx.error_spanned_by(
                    lit,
                    format!(
                        "a sliding window keeps one timestamp per request; at most {MAX_WINDOW_COUNT} per window (use `algorithm = \"gcra\"` for larger rates)"
                    ),
                );
            }
            Some(RateValue { count, secs })
        }
        Err(msg) => {
            let msg = if lit.value() == "unlimited" {
                "`unlimited` is only valid as the endpoint's `rate`".to_owned()
            } else {
                msg
            };
            cx.error_spanned_by(lit, msg);
            None
        }
    }
}

/// `burst` or `cost`: a positive `u32`.
fn positive(cx: &Ctxt, opt: &Opt<LitInt>) -> Option<u32> {
    let (lit, what) = (&opt.value, &opt.key);
    match lit.base10_parse::<u64>() {
        Ok(0) => {
            cx.error_spanned_by(
                lit,
                format!("`{what} = 0` would refuse every request; use a positive number"),
            );
            None
        }
        Ok(n) => match u32::try_from(n) {
            Ok(n) => Some(n),
            Err(_) => {
                cx.error_spanned_by(
                    lit,
                    format!("`{what}` is too large; the most is 4294967295"),
                );
                None
            }
        },
        Err(e) => {
            cx.syn_error(e);
            None
        }
    }
}

/// Checks a route path: leading `/`, balanced `{name}` / `{name:regex}` segments with
/// unique identifier names.
fn path(cx: &Ctxt, lit: &syn::LitStr) -> bool {
    let p = lit.value();
    let fail = |msg: String| {
        cx.error_spanned_by(lit, msg);
        false
    };
    if !p.starts_with('/') {
        return fail(format!(
            "a route path starts with `/`: `\"/{}\"`",
            p.trim_start_matches('/')
        ));
    }
    if p.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return fail("a route path cannot contain whitespace or control characters".to_owned());
    }
    let mut names = HashSet::new();
    let mut rest = p.as_str();
    while let Some(open) = rest.find(['{', '}']) {
        if rest.as_bytes()[open] == b'}' {
            return fail("unbalanced `}` in the route path".to_owned());
        }
        let after = &rest[open + 1..];
        let Some(end) = closing_brace(after) else {
            return fail(
                "unclosed `{` in the route path; segments are written `{name}`".to_owned(),
            );
        };
        let segment = &after[..end];
        let name = segment.split(':').next().unwrap_or_default();
        if name.is_empty()
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            || name.starts_with(|c: char| c.is_ascii_digit())
        {
            return fail(format!(
                "`{{{segment}}}` is not a valid path segment; write `{{name}}` or `{{name:regex}}`"
            ));
        }
        if !names.insert(name.to_owned()) {
            return fail(format!("the path segment `{name}` appears twice"));
        }
        rest = &after[end + 1..];
    }
    true
}

/// The index of the `}` closing a segment whose `{` came just before `after`. A regex may
/// hold `{m,n}` quantifiers, so braces are counted.
fn closing_brace(after: &str) -> Option<usize> {
    let mut depth = 1;
    for (i, c) in after.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Checks the handler function itself.
fn handler(cx: &Ctxt, func: &ItemFn) {
    let sig = &func.sig;
    if sig.asyncness.is_none() {
        cx.error_spanned_by(
            sig.fn_token,
            "`#[secure_endpoint]` handlers must be `async fn`",
        );
    }
    if !sig.generics.params.is_empty() {
        cx.error_spanned_by(
            &sig.generics,
            "`#[secure_endpoint]` does not support generic handlers: write one concrete handler per type",
        );
    }
    for arg in &sig.inputs {
        match arg {
            FnArg::Receiver(r) => cx.error_spanned_by(
                r,
                "`#[secure_endpoint]` handlers cannot take `self`; write a free function and reach shared state through `web::Data`",
            ),
            FnArg::Typed(t) => argument(cx, &t.ty),
        }
    }
    if let Some(extra) = arg_types(func).get(MAX_ARGS) {
        cx.error_spanned_by(
            extra,
            format!("actix extracts at most {MAX_ARGS} arguments; group some in a struct"),
        );
    }
}

/// One argument of the handler: an extractor actix can name, and not a raw body.
fn argument(cx: &Ctxt, ty: &Type) {
    if let Some(what) = raw_body(ty) {
        cx.error_spanned_by(
            ty,
            format!(
                "`{what}` skips validation; take `Valid<T>` instead and add `#[derive(SecureInput)]` to `T`"
            ),
        );
    }
    if matches!(ty, Type::ImplTrait(_)) {
        cx.error_spanned_by(
            ty,
            "`impl Trait` arguments make the handler generic; name the extractor type",
        );
    }
}

/// `Some(description)` when `ty` is an unvalidated JSON or form body.
fn raw_body(ty: &Type) -> Option<String> {
    let Type::Path(p) = ty else {
        return None;
    };
    let last = p.path.segments.last()?;
    match last.ident.to_string().as_str() {
        "Json" => Some(ty.to_token_stream().to_string().replace(' ', "")),
        _ => None,
    }
}

/// The handler's argument types, in order.
fn arg_types(func: &ItemFn) -> Vec<&Type> {
    func.sig
        .inputs
        .iter()
        .filter_map(|a| match a {
            FnArg::Typed(t) => Some(&*t.ty),
            FnArg::Receiver(_) => None,
        })
        .collect()
}
