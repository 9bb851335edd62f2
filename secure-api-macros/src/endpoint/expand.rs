//! Expansion of `#[secure_endpoint]`: the handler, unchanged, nested in a wrapper that runs
//! the endpoint's checks; with a route, an `HttpServiceFactory` as actix's `#[post]` makes.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;

use super::model::{Auth, Cond, Endpoint, Limit, PermItem, RateValue};

fn runtime(e: &Endpoint<'_>) -> TokenStream {
    match &e.krate {
        Some(path) => quote!(#path::__private),
        None => quote!(::secure_api_runtime::__private),
    }
}

fn rate(p: &TokenStream, r: RateValue) -> TokenStream {
    let count = r.count;
    match r.secs {
        1 => quote!(#p::Rate::per_second(#count)),
        60 => quote!(#p::Rate::per_minute(#count)),
        3600 => quote!(#p::Rate::per_hour(#count)),
        _ => quote!(#p::Rate::per_day(#count)),
    }
}

fn policy(
    p: &TokenStream,
    name: &str,
    r: RateValue,
    burst: Option<u32>,
    sliding: bool,
) -> TokenStream {
    let rate = rate(p, r);
    let burst = burst.map(|b| quote!(.with_burst(#b)));
    let algorithm = if sliding {
        quote!(#p::Algorithm::SlidingWindow)
    } else {
        quote!(#p::Algorithm::Gcra)
    };
    quote!(#p::Policy::new(#name, #rate) #burst .with_algorithm(#algorithm))
}

fn spec(e: &Endpoint<'_>, p: &TokenStream) -> TokenStream {
    let name = e.func.sig.ident.to_string();
    let limit = match &e.limit {
        Limit::Unlimited => quote!(#p::Limit::Unlimited),
        Limit::Default => quote!(#p::Limit::Default),
        Limit::Rate {
            rate,
            burst,
            sliding,
        } => {
            let policy = policy(p, "default", *rate, *burst, *sliding);
            quote!(#p::Limit::Policy(#policy))
        }
    };
    // Policy identifiers, hashed at compile time: the method and route (empty without a
    // route), the handler's path (so that handlers with one route under different
    // `web::scope`s keep their own limits), and the tier (empty for the base limit).
    let (method, path) = match &e.route {
        Some((method, path)) => (method.to_uppercase(), path.clone()),
        None => (String::new(), String::new()),
    };
    let handler = quote!(::core::concat!(::core::module_path!(), "::", #name));
    let policy_id = |tier: &str| {
        let parts = quote!(["secure-api/endpoint", #method, #path, #handler, #tier]);
        quote!(#p::policy_id(&#parts))
    };
    let base_id = policy_id("");
    let tiers = e.tiers.iter().map(|(name, r)| {
        let policy = policy(p, name, *r, None, e.sliding);
        let id = policy_id(name);
        quote!(#p::TierPolicy { id: #id, policy: #policy })
    });
    let on_store_error = match e.on_store_error {
        Some(variant) => {
            let variant = format_ident!("{}", variant);
            quote!(::core::option::Option::Some(#p::OnStoreError::#variant))
        }
        None => quote!(::core::option::Option::None),
    };
    let key = format_ident!("{}", e.key);
    let cost = e.cost;
    let max_body = match e.max_body {
        Some(bytes) => {
            let bytes = bytes as usize;
            quote!(::core::option::Option::Some(#bytes))
        }
        None => quote!(::core::option::Option::None),
    };
    let idempotency = match &e.idempotency {
        Some(i) => {
            let (ttl, required, wait) = (i.ttl_ms, i.required, i.wait_ms);
            quote!(::core::option::Option::Some(#p::IdempotencySpec { ttl_ms: #ttl, required: #required, wait_ms: #wait }))
        }
        None => quote!(::core::option::Option::None),
    };
    let route = match &e.route {
        Some((_, path)) => path.clone(),
        None => name.clone(),
    };
    let auth = match &e.auth {
        Auth::Optional => quote!(#p::AuthRequirement::Optional),
        Auth::Public => quote!(#p::AuthRequirement::Public),
        Auth::Required(conds) => {
            let rule = match conds.as_slice() {
                [] => quote!(#p::Rule::Authenticated),
                [one] => rule(p, one),
                many => {
                    let rules = many.iter().map(|c| rule(p, c));
                    quote!(#p::Rule::All(&[#(#rules),*]))
                }
            };
            quote!(#p::AuthRequirement::Required(#rule))
        }
    };
    let registration = registration(e, p);
    quote! {
        #registration
        static __SECURE_ENDPOINT: #p::EndpointSpec = #p::EndpointSpec {
            name: #name,
            auth: #auth,
            route: #route,
            idempotency: #idempotency,
            limit: #limit,
            policy_id: #base_id,
            tiers: &[#(#tiers),*],
            key: #p::KeyKind::#key,
            cost: #cost,
            max_body: #max_body,
            on_store_error: #on_store_error,
        };
    }
}

/// The endpoint's entry in the distributed registry (the inventory): the spec, the route,
/// the handler's module and its validated inputs.
fn registration(e: &Endpoint<'_>, p: &TokenStream) -> TokenStream {
    let route = match &e.route {
        Some((method, path)) => {
            let method = method.to_uppercase();
            quote!(::core::option::Option::Some(#p::RouteSpec { method: #method, path: #path }))
        }
        None => quote!(::core::option::Option::None),
    };
    let inputs = e.arg_types.iter().filter_map(|ty| {
        let (source, inner) = validated_input(ty)?;
        let source = format_ident!("{}", source);
        Some(quote! {
            #p::InputSpec {
                source: #p::InputSource::#source,
                type_name: || ::core::any::type_name::<#inner>(),
                schema: #p::openapi_input!(#inner),
            }
        })
    });
    quote! {
        #p::inventory::submit! {
            #p::Registration {
                spec: &__SECURE_ENDPOINT,
                route: #route,
                module: ::core::module_path!(),
                inputs: &[#(#inputs),*],
            }
        }
    }
}

/// `Valid<T>`, `ValidQuery<T>` or `ValidPath<T>` (by the last segment of the path, as
/// written): the input's source and `T`.
fn validated_input(ty: &syn::Type) -> Option<(&'static str, &syn::Type)> {
    let syn::Type::Path(p) = ty else {
        return None;
    };
    if p.qself.is_some() {
        return None;
    }
    let last = p.path.segments.last()?;
    let source = match last.ident.to_string().as_str() {
        "Valid" => "Body",
        "ValidQuery" => "Query",
        "ValidPath" => "Path",
        _ => return None,
    };
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.iter().collect::<Vec<_>>().as_slice() {
        [syn::GenericArgument::Type(inner)] => Some((source, inner)),
        _ => None,
    }
}

fn rule(p: &TokenStream, cond: &Cond) -> TokenStream {
    match cond {
        Cond::Roles(_, roles) => quote!(#p::Rule::Roles(&[#(#roles),*])),
        Cond::Permissions(_, perms) => {
            let perms = perms.iter().map(|perm| match perm {
                PermItem::Name(lit) => quote!(#p::PermissionRef::Name(#lit)),
                // Spanned at the user's path: a variant that does not exist is reported there.
                PermItem::Typed(path) => quote_spanned! {path.span()=>
                    #p::PermissionRef::Typed(|| #p::Permission::name(&#path))
                },
            });
            quote!(#p::Rule::Permissions(&[#(#perms),*]))
        }
        Cond::Any(_, inner) => {
            let rules = inner.iter().map(|c| rule(p, c));
            quote!(#p::Rule::Any(&[#(#rules),*]))
        }
        Cond::All(_, inner) => {
            let rules = inner.iter().map(|c| rule(p, c));
            quote!(#p::Rule::All(&[#(#rules),*]))
        }
    }
}

/// The wrapper: `async fn name(HttpRequest, web::Payload) -> HttpResponse`, with the user's
/// function nested inside under its own name.
fn wrapper(e: &Endpoint<'_>, p: &TokenStream, vis: &syn::Visibility) -> TokenStream {
    let func = e.func;
    let name = &func.sig.ident;
    let spec = spec(e, p);
    let args: Vec<_> = (0..e.arg_types.len())
        .map(|i| format_ident!("__arg{}", i, span = Span::mixed_site()))
        .collect();
    let aw = quote!(#p::actix_web);
    // One extraction per argument, spanned at its type, so that a type that cannot be
    // extracted is reported there. In order, like actix's tuple extraction.
    let extract = args.iter().zip(&e.arg_types).map(|(arg, ty)| {
        quote_spanned! {ty.span()=>
            let #arg = match <#ty as #aw::FromRequest>::from_request(&__req, &mut __payload).await {
                ::core::result::Result::Ok(arg) => arg,
                ::core::result::Result::Err(err) => return ::core::result::Result::Err(::core::convert::Into::into(err)),
            };
        }
    });
    // Idempotent endpoints have a runner of their own, so that the idempotency machinery is
    // not part of every endpoint's future.
    let run = if e.idempotency.is_some() {
        quote!(run_idempotent)
    } else {
        quote!(run)
    };
    let body = quote! {
        #[allow(clippy::too_many_arguments)]
        #func
        #spec
        #p::#run(&__SECURE_ENDPOINT, __req, __payload.into_inner(), |__req, mut __payload| async move {
            #(#extract)*
            let __out = #name(#(#args),*).await;
            ::core::result::Result::Ok(#aw::Responder::respond_to(__out, &__req).map_into_boxed_body())
        }).await
    };
    handler_fn(e, p, vis, &body)
}

/// `async fn name(__req: HttpRequest, __payload: web::Payload) -> HttpResponse { body }`,
/// with the user's docs: the shape of an endpoint without a route.
fn handler_fn(
    e: &Endpoint<'_>,
    p: &TokenStream,
    vis: &syn::Visibility,
    body: &TokenStream,
) -> TokenStream {
    let name = &e.func.sig.ident;
    let docs = e.func.attrs.iter().filter(|a| a.path().is_ident("doc"));
    let aw = quote!(#p::actix_web);
    quote! {
        #(#docs)*
        #vis async fn #name(
            __req: #aw::HttpRequest,
            __payload: #aw::web::Payload,
        ) -> #aw::HttpResponse {
            #body
        }
    }
}

/// A unit struct named after the handler whose `HttpServiceFactory::register` runs
/// `register`, with the user's docs: the shape of an endpoint with a route.
fn service(e: &Endpoint<'_>, p: &TokenStream, register: &TokenStream) -> TokenStream {
    let vis = &e.func.vis;
    let name = &e.func.sig.ident;
    let docs = e.func.attrs.iter().filter(|a| a.path().is_ident("doc"));
    let aw = quote!(#p::actix_web);
    quote! {
        #(#docs)*
        #[allow(non_camel_case_types, missing_docs)]
        #vis struct #name;

        impl #aw::dev::HttpServiceFactory for #name {
            fn register(self, __config: &mut #aw::dev::AppService) {
                #register
            }
        }
    }
}

pub fn endpoint(e: &Endpoint<'_>) -> TokenStream {
    let p = runtime(e);
    let Some((method, path)) = &e.route else {
        return wrapper(e, &p, &e.func.vis);
    };
    let name = &e.func.sig.ident;
    let name_str = name.to_string();
    let method = format_ident!("{}", method.to_uppercase());
    let inner = wrapper(e, &p, &syn::Visibility::Inherited);
    let aw = quote!(#p::actix_web);
    let register = quote! {
        #inner
        let __resource = #aw::Resource::new(#path)
            .name(#name_str)
            .guard(#aw::guard::Method(#aw::http::Method::#method))
            .to(#name);
        #aw::dev::HttpServiceFactory::register(__resource, __config);
    };
    service(e, &p, &register)
}

/// On error: the items [`endpoint`] would make (the service with a route, the handler
/// function without one), so that code using the handler still type-checks and only the
/// real errors are reported. No policy is built and nothing is registered: the build fails
/// on the errors beside this code, so it never runs. The user's function is nested inside
/// as written, so its body is still checked.
///
/// A method (a `self` receiver, itself an error) is emitted as written: neither shape can
/// stand in an `impl` block.
pub fn fallback(e: &Endpoint<'_>, routed: bool) -> TokenStream {
    let func = e.func;
    if func.sig.receiver().is_some() {
        return quote!(#func);
    }
    let p = runtime(e);
    let nested = quote! {
        #[allow(dead_code)]
        #func
    };
    if routed {
        return service(e, &p, &nested);
    }
    let aw = quote!(#p::actix_web);
    let body = quote! {
        #nested
        #aw::HttpResponse::InternalServerError().finish()
    };
    handler_fn(e, &p, &e.func.vis, &body)
}
