//! Parsing `#[secure_endpoint(...)]` into [`Args`]. Syntax errors and unknown or duplicate
//! options are recorded and parsing goes on.

use proc_macro2::TokenStream;
use syn::meta::ParseNestedMeta;
use syn::parse::Parser;
use syn::{LitInt, LitStr, Token};

use super::model::{Args, METHODS, OPTION_KEYS, Opt, Route, Tier};
use crate::common::skip_value;
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

fn set<T>(cx: &Ctxt, slot: &mut Option<Opt<T>>, key: syn::Ident, value: T) {
    if slot.is_some() {
        cx.error_spanned_by(&key, format!("duplicate `{key}` option; give it once"));
    } else {
        *slot = Some(Opt { key, value });
    }
}

fn option(cx: &Ctxt, meta: &ParseNestedMeta<'_>, args: &mut Args) -> syn::Result<()> {
    let key = match meta.path.get_ident() {
        Some(ident) => ident.clone(),
        None if meta.path.is_ident("crate") => {
            syn::Ident::new("crate", proc_macro2::Span::call_site())
        }
        None => {
            cx.error_spanned_by(&meta.path, suggest::unknown("option", "?", OPTION_KEYS));
            return skip_value(meta);
        }
    };
    let name = key.to_string();
    if METHODS.contains(&name.as_str()) {
        if !meta.input.peek(syn::token::Paren) {
            cx.error_spanned_by(
                &key,
                format!("a route needs a path: `{name}(\"/api/users\")`"),
            );
            return skip_value(meta);
        }
        let content;
        syn::parenthesized!(content in meta.input);
        let path: LitStr = content.parse()?;
        if args.route.is_some() {
            cx.error_spanned_by(
                &key,
                "an endpoint has one route; register the handler again with another `#[secure_endpoint]` function for more",
            );
        } else {
            args.route = Some(Route { method: key, path });
        }
        return Ok(());
    }
    match name.as_str() {
        "rate" | "algorithm" | "key" | "max_body" => {
            let Some(lit) = string_value(cx, meta, &key)? else {
                return Ok(());
            };
            let slot = match name.as_str() {
                "rate" => &mut args.rate,
                "algorithm" => &mut args.algorithm,
                "key" => &mut args.key,
                _ => &mut args.max_body,
            };
            set(cx, slot, key, lit);
        }
        "burst" | "cost" => {
            if !meta.input.peek(Token![=]) {
                cx.error_spanned_by(&key, format!("`{name}` needs a number: `{name} = 10`"));
                return skip_value(meta);
            }
            let value = meta.value()?;
            if value.peek(Token![-]) {
                let minus: Token![-] = value.parse()?;
                let lit: LitInt = value.parse()?;
                cx.error_spanned_by(
                    quote::quote!(#minus #lit),
                    format!("`{name}` must be a positive whole number"),
                );
                return Ok(());
            }
            let lit: LitInt = value.parse()?;
            let slot = if name == "burst" {
                &mut args.burst
            } else {
                &mut args.cost
            };
            set(cx, slot, key, lit);
        }
        "tier" => {
            if !meta.input.peek(syn::token::Paren) {
                cx.error_spanned_by(&key, "`tier` lists per-tier rates: `tier(anonymous = \"10/s\", premium = \"1000/s\")`");
                return skip_value(meta);
            }
            let mut tiers = Vec::new();
            meta.parse_nested_meta(|t| {
                let Some(name) = t.path.get_ident().cloned() else {
                    cx.error_spanned_by(
                        &t.path,
                        "a tier name is a single identifier, such as `premium`",
                    );
                    return skip_value(&t);
                };
                if !t.input.peek(Token![=]) {
                    cx.error_spanned_by(
                        &name,
                        format!("give the tier a rate: `{name} = \"100/s\"`"),
                    );
                    return skip_value(&t);
                }
                let rate: LitStr = t.value()?.parse()?;
                tiers.push(Tier { name, rate });
                Ok(())
            })?;
            set(cx, &mut args.tiers, key, tiers);
        }
        "idempotent" => {
            let mut idem = super::model::IdempotentArgs::default();
            if meta.input.peek(syn::token::Paren) {
                meta.parse_nested_meta(|m| {
                    let Some(k) = m.path.get_ident().cloned() else {
                        cx.error_spanned_by(
                            &m.path,
                            suggest::unknown(
                                "`idempotent` option",
                                "?",
                                super::model::IDEMPOTENT_KEYS,
                            ),
                        );
                        return skip_value(&m);
                    };
                    match k.to_string().as_str() {
                        "ttl" | "wait" => {
                            if let Some(lit) = string_value(cx, &m, &k)? {
                                let slot = if k == "ttl" {
                                    &mut idem.ttl
                                } else {
                                    &mut idem.wait
                                };
                                set(cx, slot, k, lit);
                            }
                        }
                        "required" => {
                            if !m.input.peek(Token![=]) {
                                cx.error_spanned_by(
                                    &k,
                                    "write `required = true` or `required = false`",
                                );
                                return skip_value(&m);
                            }
                            let value: syn::Expr = m.value()?.parse()?;
                            match value {
                                syn::Expr::Lit(syn::ExprLit {
                                    lit: syn::Lit::Bool(lit),
                                    ..
                                }) => set(cx, &mut idem.required, k, lit),
                                other => cx.error_spanned_by(
                                    other,
                                    "write `required = true` or `required = false`",
                                ),
                            }
                        }
                        other => {
                            cx.error_spanned_by(
                                &k,
                                suggest::unknown(
                                    "`idempotent` option",
                                    other,
                                    super::model::IDEMPOTENT_KEYS,
                                ),
                            );
                            return skip_value(&m);
                        }
                    }
                    Ok(())
                })?;
            } else if meta.input.peek(Token![=]) {
                cx.error_spanned_by(&key, "write `idempotent` or `idempotent(ttl = \"24h\", required = true, wait = \"2s\")`");
                return skip_value(meta);
            }
            set(cx, &mut args.idempotent, key, idem);
        }
        "public" => {
            if !meta.input.is_empty() && !meta.input.peek(Token![,]) {
                cx.error_spanned_by(&key, "`public` takes no arguments");
                skip_value(meta)?;
            }
            set(cx, &mut args.public, key, ());
        }
        "auth" => {
            if meta.input.peek(Token![=]) {
                let value: syn::Expr = meta.value()?.parse()?;
                let text = quote::ToTokens::to_token_stream(&value)
                    .to_string()
                    .to_lowercase();
                if text.contains("basic") {
                    cx.error_spanned_by(&value, BASIC_AUTH);
                } else {
                    cx.error_spanned_by(&value, "write `auth` for any authenticated caller, or `auth(roles(\"admin\"))`, `auth(permissions(\"users:delete\"))`");
                }
                return Ok(());
            }
            let mut conds = Vec::new();
            if meta.input.peek(syn::token::Paren) {
                meta.parse_nested_meta(|m| cond(cx, &m, &mut conds))?;
            }
            set(cx, &mut args.auth, key, conds);
        }
        "crate" => {
            let value = meta.value()?;
            let path = if value.peek(LitStr) {
                let lit: LitStr = value.parse()?;
                lit.parse()?
            } else {
                value.parse()?
            };
            set(cx, &mut args.krate, key, path);
        }
        _ => {
            cx.error_spanned_by(&key, suggest::unknown("option", &name, OPTION_KEYS));
            return skip_value(meta);
        }
    }
    Ok(())
}

const BASIC_AUTH: &str = "basic auth sends a reusable password with every request and is not supported; secure-api requires bearer JWTs: write `auth` (or `auth(roles(...))`) and configure `SecureApi::builder().jwt(...)`";

fn cond(
    cx: &Ctxt,
    meta: &ParseNestedMeta<'_>,
    out: &mut Vec<super::model::Cond>,
) -> syn::Result<()> {
    use super::model::{AUTH_KEYS, Cond, PermItem};
    let Some(key) = meta.path.get_ident().cloned() else {
        cx.error_spanned_by(
            &meta.path,
            suggest::unknown("`auth` option", "?", AUTH_KEYS),
        );
        return skip_value(meta);
    };
    let name = key.to_string();
    if matches!(name.as_str(), "basic" | "scheme" | "username" | "password") {
        cx.error_spanned_by(&key, BASIC_AUTH);
        return skip_value(meta);
    }
    if !AUTH_KEYS.contains(&name.as_str()) {
        cx.error_spanned_by(&key, suggest::unknown("`auth` option", &name, AUTH_KEYS));
        return skip_value(meta);
    }
    if !meta.input.peek(syn::token::Paren) {
        cx.error_spanned_by(&key, format!("`{name}` needs a list: `{name}(...)`"));
        return skip_value(meta);
    }
    match name.as_str() {
        "roles" | "permissions" => {
            let content;
            syn::parenthesized!(content in meta.input);
            let mut roles = Vec::new();
            let mut perms = Vec::new();
            while !content.is_empty() {
                if content.peek(LitStr) {
                    let lit: LitStr = content.parse()?;
                    if name == "roles" {
                        roles.push(lit);
                    } else {
                        perms.push(PermItem::Name(lit));
                    }
                } else if name == "permissions" {
                    perms.push(PermItem::Typed(content.parse()?));
                } else {
                    return Err(content.error("a role is a string: `roles(\"admin\")`"));
                }
                if !content.is_empty() {
                    content.parse::<Token![,]>()?;
                }
            }
            out.push(if name == "roles" {
                Cond::Roles(key, roles)
            } else {
                Cond::Permissions(key, perms)
            });
        }
        _ => {
            let mut inner = Vec::new();
            crate::common::nested(meta, |m| cond(cx, &m, &mut inner))?;
            out.push(if name == "any" {
                Cond::Any(key, inner)
            } else {
                Cond::All(key, inner)
            });
        }
    }
    Ok(())
}

/// `key = "..."`; records an error and returns `None` for any other form.
fn string_value(
    cx: &Ctxt,
    meta: &ParseNestedMeta<'_>,
    key: &syn::Ident,
) -> syn::Result<Option<LitStr>> {
    if !meta.input.peek(Token![=]) {
        cx.error_spanned_by(key, format!("`{key}` needs a value: `{key} = \"...\"`"));
        skip_value(meta)?;
        return Ok(None);
    }
    let value = meta.value()?;
    if value.peek(LitStr) {
        return Ok(Some(value.parse()?));
    }
    let expr: syn::Expr = value.parse()?;
    cx.error_spanned_by(&expr, format!("`{key}` takes a string: `{key} = \"...\"`"));
    Ok(None)
}
