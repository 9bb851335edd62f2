//! Checking `#[secure_endpoint]`: every misconfiguration of the options and of the
//! handler, reported together.

use std::collections::HashSet;

use quote::ToTokens;
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, LitInt, Type};

use super::model::{ALGORITHMS, Args, Endpoint, Idempotency, KEYS, Limit, Opt, RateValue};
use crate::ctxt::Ctxt;
use crate::limits::{DEFAULT_TTL_MS, MAX_WINDOW_COUNT};
use crate::{suggest, units};

/// actix extracts at most this many arguments.
const MAX_ARGS: usize = 16;

pub fn endpoint<'a>(cx: &Ctxt, args: Args, func: &'a ItemFn) -> Endpoint<'a> {
    handler(cx, func);

    let route = args
        .route
        .as_ref()
        .and_then(|r| path(cx, &r.path).then(|| (r.method.to_string(), r.path.value())));

    let sliding = match &args.algorithm {
        None => false,
        Some(Opt { value, .. }) => match value.value().as_str() {
            "gcra" => false,
            "sliding_window" => true,
            other => {
                cx.error_spanned_by(value, suggest::unknown("algorithm", other, ALGORITHMS));
                false
            }
        },
    };

    let unlimited = args
        .rate
        .as_ref()
        .filter(|r| r.value.value() == "unlimited");
    let rate = match &args.rate {
        Some(r) if unlimited.is_none() => parse_rate(cx, &r.value, sliding),
        _ => None,
    };
    let burst = args
        .burst
        .as_ref()
        .and_then(|b| positive(cx, &b.value, "burst"));
    let cost = args
        .cost
        .as_ref()
        .and_then(|c| positive(cx, &c.value, "cost"));

    if unlimited.is_some() {
        for (opt, name) in [
            (args.burst.as_ref().map(|o| &o.key), "burst"),
            (args.cost.as_ref().map(|o| &o.key), "cost"),
            (args.algorithm.as_ref().map(|o| &o.key), "algorithm"),
            (args.key.as_ref().map(|o| &o.key), "key"),
        ] {
            if let Some(k) = opt {
                cx.error_spanned_by(
                    k,
                    format!("`{name}` has no effect with `rate = \"unlimited\"`; remove it or give a rate"),
                );
            }
        }
    }
    if args.rate.is_none() {
        // Without `rate` the endpoint's base limit is the app's default policy, which these
        // options cannot change: refuse them rather than drop them silently.
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
    if sliding && let Some(b) = &args.burst {
        cx.error_spanned_by(
            &b.key,
            "`burst` applies to `algorithm = \"gcra\"`; a sliding window allows at most its count in any window",
        );
    }
    if let (Some(cost_value), Some(c)) = (cost, &args.cost) {
        let capacity = if sliding {
            rate.map(|r| r.count)
        } else {
            burst.or(rate.map(|r| r.count))
        };
        if let Some(capacity) = capacity.filter(|cap| cost_value > *cap) {
            cx.error_spanned_by(
                &c.value,
                format!("`cost = {cost_value}` is more than the {capacity} a client can ever have, so every request would be refused"),
            );
        }
    }

    let mut tiers: Vec<(String, RateValue)> = Vec::new();
    if let Some(t) = &args.tiers {
        if t.value.is_empty() {
            cx.error_spanned_by(
                &t.key,
                "`tier()` is empty; list tiers such as `tier(premium = \"1000/s\")`",
            );
        }
        let mut seen = HashSet::new();
        for tier in &t.value {
            let name = tier.name.to_string();
            if !seen.insert(name.clone()) {
                cx.error_spanned_by(&tier.name, format!("duplicate tier `{name}`"));
                continue;
            }
            if let Some(r) = parse_rate(cx, &tier.rate, sliding) {
                // A tier's policy has no burst of its own: its capacity is its count.
                if let (Some(cost_value), Some(c)) = (cost, &args.cost)
                    && cost_value > r.count
                {
                    cx.error_spanned_by(
                        &c.value,
                        format!("`cost = {cost_value}` is more than the {} a client of tier `{name}` can ever have, so every request of that tier would be refused; lower `cost` or raise the tier's rate", r.count),
                    );
                }
                tiers.push((name, r));
            }
        }
    }

    let key = match &args.key {
        None => "Auto",
        Some(k) => match k.value.value().as_str() {
            "ip" => "Ip",
            "principal" => "Principal",
            "ip_and_principal" => "IpAndPrincipal",
            other => {
                cx.error_spanned_by(&k.value, suggest::unknown("key", other, KEYS));
                "Auto"
            }
        },
    };

    let max_body = args
        .max_body
        .as_ref()
        .and_then(|m| match units::size(&m.value.value()) {
            Ok(bytes) => Some(bytes),
            Err(msg) => {
                cx.error_spanned_by(&m.value, msg);
                None
            }
        });

    let idempotency = args
        .idempotent
        .as_ref()
        .map(|i| idempotent(cx, i, args.route.as_ref()));

    if let (Some(public), Some(_)) = (&args.public, &args.auth) {
        cx.error_spanned_by(
            &public.key,
            "`public` means no authentication and conflicts with `auth`; keep one",
        );
    }
    if let Some(auth) = &args.auth {
        conds(cx, &auth.value);
    }

    let limit = if unlimited.is_some() {
        Limit::Unlimited
    } else {
        match rate {
            Some(rate) => Limit::Rate {
                rate,
                burst,
                sliding,
            },
            None => Limit::Default,
        }
    };

    let auth = match (args.auth, args.public) {
        (Some(auth), _) => Some(Some(auth.value)),
        (None, Some(_)) => Some(None),
        (None, None) => None,
    };

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
        arg_types: func
            .sig
            .inputs
            .iter()
            .filter_map(|a| match a {
                FnArg::Typed(t) => Some(&*t.ty),
                FnArg::Receiver(_) => None,
            })
            .collect(),
    }
}

fn conds(cx: &Ctxt, list: &[super::model::Cond]) {
    use super::model::{Cond, PermItem};
    for cond in list {
        match cond {
            Cond::Roles(key, roles) => {
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
            Cond::Permissions(key, perms) => {
                if perms.is_empty() {
                    cx.error_spanned_by(key, "`permissions()` is empty; name at least one permission, such as `permissions(\"users:delete\")`");
                }
                let mut seen = HashSet::new();
                for perm in perms {
                    if let PermItem::Name(lit) = perm {
                        let v = lit.value();
                        if !is_identifier(&v, true) {
                            cx.error_spanned_by(lit, format!("`{v}` is not a valid permission: `resource:action` segments of letters, digits, `_`, `-` and `.`, separated by `:`"));
                        } else if !seen.insert(v.clone()) {
                            cx.error_spanned_by(lit, format!("duplicate permission `{v}`"));
                        }
                    }
                }
            }
            Cond::Any(key, inner) | Cond::All(key, inner) => {
                if inner.is_empty() {
                    cx.error_spanned_by(key, format!("`{key}()` is empty; list conditions such as `{key}(roles(\"admin\"), permissions(\"users:delete\"))`"));
                }
                conds(cx, inner);
            }
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

/// Longest replay window: 30 days.
const MAX_TTL_MS: u64 = 30 * 86_400_000;
/// Longest wait for an in-flight request: 30 seconds.
const MAX_WAIT_MS: u64 = 30_000;

fn idempotent(
    cx: &Ctxt,
    opt: &Opt<super::model::IdempotentArgs>,
    route: Option<&super::model::Route>,
) -> Idempotency {
    if let Some(route) = route {
        let method = route.method.to_string();
        if matches!(method.as_str(), "get" | "head" | "options") {
            cx.error_spanned_by(
                &opt.key,
                format!(
                    "`idempotent` does not apply to {} routes: {} requests are safe and idempotent already; use it on `post` or `patch`",
                    method.to_uppercase(),
                    method.to_uppercase()
                ),
            );
        }
    }
    let args = &opt.value;
    let duration =
        |o: &Opt<syn::LitStr>, max: u64, what: &str| match units::duration(&o.value.value()) {
            Ok(ms) if ms > max => {
                cx.error_spanned_by(
                    &o.value,
                    format!(
                        "`{what}` is at most {}",
                        if max == MAX_TTL_MS {
                            "30 days (\"30day\")"
                        } else {
                            "30 seconds (\"30s\")"
                        }
                    ),
                );
                None
            }
            Ok(ms) => Some(ms),
            Err(msg) => {
                cx.error_spanned_by(&o.value, msg);
                None
            }
        };
    let ttl_ms = args
        .ttl
        .as_ref()
        .and_then(|t| duration(t, MAX_TTL_MS, "ttl"))
        .unwrap_or(DEFAULT_TTL_MS);
    let wait_ms = args
        .wait
        .as_ref()
        .and_then(|w| duration(w, MAX_WAIT_MS, "wait"))
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

fn positive(cx: &Ctxt, lit: &LitInt, what: &str) -> Option<u32> {
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
        // A regex may hold `{m,n}` quantifiers: find the matching close brace.
        let mut depth = 1;
        let mut end = None;
        for (i, c) in after.char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = Some(i);
                        break;
                    }
                }
                _ => {}
            }
        }
        let Some(end) = end else {
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
    let mut typed = 0;
    for arg in &sig.inputs {
        match arg {
            FnArg::Receiver(r) => cx.error_spanned_by(
                r,
                "`#[secure_endpoint]` handlers cannot take `self`; write a free function and reach shared state through `web::Data`",
            ),
            FnArg::Typed(t) => {
                typed += 1;
                if let Some(what) = raw_body(&t.ty) {
                    cx.error_spanned_by(
                        &t.ty,
                        format!(
                            "`{what}` skips validation; take `Valid<T>` instead and add `#[derive(SecureInput)]` to `T`"
                        ),
                    );
                }
                if matches!(*t.ty, Type::ImplTrait(_)) {
                    cx.error_spanned_by(&t.ty, "`impl Trait` arguments make the handler generic; name the extractor type");
                }
            }
        }
    }
    if typed > MAX_ARGS {
        cx.error_at(
            sig.inputs.span(),
            format!("actix extracts at most {MAX_ARGS} arguments; group some in a struct"),
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
