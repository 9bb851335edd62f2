//! The document: one operation per endpoint of the inventory, from its registration (the
//! inputs' schemas) and its inventory entry (its policies, with the app's defaults).

use std::collections::BTreeMap;

use serde_json::{Value, json};
use utoipa::openapi::extensions::Extensions;
use utoipa::openapi::header::Header;
use utoipa::openapi::path::{Operation, Parameter, ParameterIn};
use utoipa::openapi::request_body::RequestBody;
use utoipa::openapi::response::{Response, Responses};
use utoipa::openapi::schema::{
    AdditionalProperties, AllOf, Array, Components, Object as JsonObject, Schema, SchemaFormat,
    SchemaType, Type,
};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityRequirement, SecurityScheme};
use utoipa::openapi::{Content, Info, OpenApi, Paths, Ref, RefOr, Required};

use super::derive::{Collector, Node, Schemas, field_schema, node_schema};
use super::{BEARER_SCHEME, PROBLEM_SCHEMA, VIOLATION_SCHEMA};
use crate::auth::rule::{AuthRequirement, Rule};
use crate::endpoint::InputSource;
use crate::inventory::{AuthInfo, EndpointInfo, Origin};
use crate::problem::{PROBLEM_JSON, ProblemType, problems};

/// The document of `endpoints` (those with a route).
pub(super) fn build(endpoints: &[EndpointInfo]) -> OpenApi {
    let mut collector = Collector::new();
    let mut paths = Paths::new();
    let mut bearer = false;
    let routed: Vec<&EndpointInfo> = endpoints
        .iter()
        .filter(|e| e.method.is_some() && e.path.is_some())
        .collect();
    for e in &routed {
        let (Some(method), Some(path)) = (e.method, e.path) else {
            continue;
        };
        let (template, names) = openapi_path(path);
        let unique = routed.iter().filter(|o| o.handler == e.handler).count() == 1;
        let operation = operation(e, &names, unique, &mut collector);
        bearer |= !matches!(e.auth, AuthInfo::Public);
        let item = paths.paths.entry(template).or_default();
        let slot = match method {
            "GET" => &mut item.get,
            "POST" => &mut item.post,
            "PUT" => &mut item.put,
            "PATCH" => &mut item.patch,
            "DELETE" => &mut item.delete,
            "HEAD" => &mut item.head,
            "OPTIONS" => &mut item.options,
            _ => continue,
        };
        if slot.is_some() {
            // One route under several scopes: the inventory knows the pattern only.
            log::warn!(
                target: "secure_api::openapi",
                "{method} {path} is the route of more than one endpoint; the OpenAPI document \
                 describes the first, {}::{} is left out",
                e.module,
                e.handler
            );
            continue;
        }
        *slot = Some(operation);
    }

    let mut schemas = Schemas::new();
    collector.finish(&mut schemas);
    for (name, first, second) in &collector.conflicts {
        log::warn!(
            target: "secure_api::openapi",
            "two input types are named `{name}`: `{first}` keeps the name in the OpenAPI \
             document and `{second}` is under its path; rename one of them for shorter names"
        );
    }
    let mut components = Components::new();
    components.schemas = schemas.into_iter().collect();
    components
        .schemas
        .insert(PROBLEM_SCHEMA.to_owned(), problem_schema());
    components
        .schemas
        .insert(VIOLATION_SCHEMA.to_owned(), violation_schema());
    if bearer {
        let mut http = Http::new(HttpAuthScheme::Bearer);
        http.bearer_format = Some("JWT".to_owned());
        http.description = Some(
            "A signed JWT access token (`Authorization: Bearer <token>`): allow-listed \
             algorithms, `exp`, `iss`, `aud` and `sub` required, `nbf` checked, and revoked \
             tokens refused."
                .to_owned(),
        );
        components.security_schemes.insert(
            BEARER_SCHEME.to_owned(),
            RefOr::T(SecurityScheme::Http(http)),
        );
    }
    let mut doc = OpenApi::new(Info::new("API", "0.0.0"), paths);
    doc.components = Some(components);
    doc
}

/// An actix path pattern as an OpenAPI path template, and its parameters' names:
/// `{id:\d+}` is `{id}`, and the tail `{rest}*` is `{rest}`.
pub(super) fn openapi_path(pattern: &str) -> (String, Vec<String>) {
    let mut out = String::with_capacity(pattern.len());
    let mut names = Vec::new();
    let mut chars = pattern.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '{' {
            out.push(c);
            continue;
        }
        // A parameter, up to its matching brace (a regex may hold braces of its own).
        let mut name = String::new();
        let mut in_name = true;
        let mut depth = 1;
        for c in chars.by_ref() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        break;
                    }
                }
                ':' if depth == 1 => in_name = false,
                _ => {}
            }
            if in_name && depth == 1 {
                name.push(c);
            }
        }
        if chars.peek() == Some(&'*') {
            chars.next();
        }
        out.push('{');
        out.push_str(&name);
        out.push('}');
        names.push(name);
    }
    (out, names)
}

/// Whether an endpoint's requests are rate limited at all (a base rate or a tier).
fn limited(e: &EndpointInfo) -> bool {
    e.rate.value != "unlimited" || !e.tiers.is_empty()
}

fn operation(
    e: &EndpointInfo,
    path_names: &[String],
    unique: bool,
    c: &mut Collector,
) -> Operation {
    let registration = e.registration.0;
    let inputs: Vec<(InputSource, Node, &'static str)> = registration
        .inputs
        .iter()
        .map(|i| (i.source, (i.schema)(), (i.type_name)()))
        .collect();
    let mut op = Operation::new();
    op.operation_id = Some(if unique {
        e.handler.to_owned()
    } else {
        format!("{}::{}", e.module, e.handler)
    });
    let mut notes = Vec::new();

    // Parameters: the path's, the query's, the idempotency key.
    let mut parameters = Vec::new();
    let path_object = inputs
        .iter()
        .find(|(s, ..)| *s == InputSource::Path)
        .and_then(|(_, node, _)| node.input_object());
    for name in path_names {
        let field = path_object
            .as_ref()
            .and_then(|o| o.fields().iter().find(|f| f.name == name));
        let mut p = Parameter::new(name.as_str());
        p.parameter_in = ParameterIn::Path;
        p.required = Required::True;
        p.schema = Some(match field {
            Some(f) => field_schema(f, c),
            None => RefOr::T(Schema::Object(JsonObject::with_type(Type::String))),
        });
        parameters.push(RefOr::T(p));
    }
    for (source, node, type_name) in &inputs {
        if *source != InputSource::Query {
            continue;
        }
        match node.input_object() {
            Some(object) => {
                for f in object.fields() {
                    let schema = field_schema(f, c);
                    for name in std::iter::once(f.name).chain(f.aliases.iter().copied()) {
                        let mut p = Parameter::new(name);
                        p.parameter_in = ParameterIn::Query;
                        p.required = if f.required && name == f.name {
                            Required::True
                        } else {
                            Required::False
                        };
                        p.schema = Some(schema.clone());
                        parameters.push(RefOr::T(p));
                    }
                }
                notes.push("Unknown query parameters are refused (422).".to_owned());
            }
            None => notes.push(format!(
                "Query parameters: those of `{type_name}`, whose schema is not described."
            )),
        }
    }
    if let Some(idem) = e.idempotency {
        let mut p = Parameter::new("Idempotency-Key");
        p.parameter_in = ParameterIn::Header;
        p.required = if idem.required {
            Required::True
        } else {
            Required::False
        };
        let mut schema = JsonObject::with_type(Type::String);
        schema.min_length = Some(1);
        p.schema = Some(RefOr::T(Schema::Object(schema)));
        p.description = Some(format!(
            "The key of this operation (draft-ietf-httpapi-idempotency-key-header): a \
             structured-field string (`\"...\"`) or a token of visible ASCII, 1 to 255 bytes. \
             {} A retry with the same key within {} gets the first response again, with \
             `Idempotent-Replayed: true`; the same key with a different request is refused \
             (422); a retry while the first request runs gets a 409 {}.",
            if idem.required {
                "Required: a request without one is refused (400)."
            } else {
                "Optional: a request without one runs without idempotency."
            },
            duration(idem.ttl_ms),
            if idem.wait_ms == 0 {
                "at once".to_owned()
            } else {
                format!("when it is still running after {}", duration(idem.wait_ms))
            },
        ));
        parameters.push(RefOr::T(p));
    }
    if !parameters.is_empty() {
        op.parameters = Some(parameters);
    }

    // The body.
    if let Some((_, node, _)) = inputs.iter().find(|(s, ..)| *s == InputSource::Body) {
        let mut body = RequestBody::new();
        body.required = Some(if node.is_nullable() {
            Required::False
        } else {
            Required::True
        });
        body.description = Some(format!(
            "JSON (`application/json` or `application/*+json`), at most {} (larger bodies are \
             refused with 413), nested no deeper than the app's limit (32 levels by default).",
            size(e.body_limit.value)
        ));
        body.content.insert(
            "application/json".to_owned(),
            RefOr::T(Content::new(Some(node_schema(node, c, "")))),
        );
        op.request_body = Some(RefOr::T(body));
    }

    // Security.
    let security_text = match &e.auth {
        AuthInfo::Public => {
            op.security = Some(Vec::new());
            "Public: credentials are never looked at.".to_owned()
        }
        AuthInfo::Unannotated => {
            op.security = Some(vec![
                SecurityRequirement::default(),
                SecurityRequirement::new(BEARER_SCHEME, Vec::<String>::new()),
            ]);
            "Authentication optional: a bearer token, when sent, is verified (401 when it \
             does not verify) and names the client; without one the caller is anonymous."
                .to_owned()
        }
        AuthInfo::Required { .. } => {
            op.security = Some(vec![SecurityRequirement::new(
                BEARER_SCHEME,
                Vec::<String>::new(),
            )]);
            if authenticated_only(registration.spec) {
                "Requires a verified bearer JWT (401 without one).".to_owned()
            } else {
                format!(
                    "Requires a verified bearer JWT (401 without one) whose principal meets \
                     `{}` (403 otherwise).",
                    e.auth
                )
            }
        }
    };
    let rate_text = rate_text(e);
    let mut description = vec![security_text, rate_text];
    if let Some(idem) = e.idempotency {
        description.push(format!(
            "Idempotent: the `Idempotency-Key` is {}; a completed response is replayed for {}.",
            if idem.required {
                "required"
            } else {
                "optional"
            },
            duration(idem.ttl_ms)
        ));
    }
    description.push(format!(
        "Body limit: {}{}.",
        size(e.body_limit.value),
        match e.body_limit.origin {
            Origin::Endpoint => "",
            Origin::AppDefault => " (the app's)",
        }
    ));
    description.extend(notes);
    op.description = Some(description.join("\n\n"));

    op.responses = responses(e, &inputs, registration.spec);
    op.extensions = Some(extensions(e));
    op
}

/// Whether `auth` requires nothing but a verified token.
fn authenticated_only(spec: &crate::endpoint::EndpointSpec) -> bool {
    matches!(spec.auth, AuthRequirement::Required(Rule::Authenticated))
}

fn rate_text(e: &EndpointInfo) -> String {
    let tiers = e
        .tiers
        .iter()
        .map(|t| format!("{} {}", t.name, t.rate))
        .collect::<Vec<_>>()
        .join(", ");
    let key = match e.key {
        "ip" => "the client's address",
        "principal" => "the principal (the client's address when anonymous)",
        "ip_and_principal" => "the principal on each address it uses",
        _ => "the principal when authenticated, else the client's address",
    };
    let base = if e.rate.value == "unlimited" {
        "Rate limit: none for requests outside a tier (`rate = \"unlimited\"`)".to_owned()
    } else {
        let algorithm = match (e.algorithm, e.burst) {
            (Some("sliding_window"), _) => "a sliding window".to_owned(),
            (_, Some(burst)) => format!("GCRA, burst {burst}"),
            _ => "GCRA".to_owned(),
        };
        format!(
            "Rate limit: {}{} ({algorithm})",
            e.rate.value,
            match e.rate.origin {
                Origin::Endpoint => "",
                Origin::AppDefault => ", the app's default",
            }
        )
    };
    if !limited(e) {
        return format!("{base}.");
    }
    let mut text = format!(
        "{base}, per {key}, {} per request",
        match e.cost {
            1 => "1 unit".to_owned(),
            n => format!("{n} units"),
        }
    );
    if !tiers.is_empty() {
        text.push_str(&format!(
            "; tiers (by the principal's tier, `anonymous` without one): {tiers}"
        ));
    }
    text.push_str(&format!(
        ". A refused request gets a 429 with `Retry-After`. When the limit's store fails: {}.",
        match e.on_store_error.value {
            "allow" => "the request is let through unlimited",
            _ => "503 (fail closed)",
        }
    ));
    text
}

fn extensions(e: &EndpointInfo) -> Extensions {
    let value = |v: Result<Value, serde_json::Error>| v.unwrap_or(Value::Null);
    let mut ext = Extensions::default();
    ext.insert(
        "x-secure-api-auth".to_owned(),
        value(serde_json::to_value(&e.auth)),
    );
    ext.insert(
        "x-secure-api-rate-limit".to_owned(),
        json!({
            "rate": value(serde_json::to_value(&e.rate)),
            "algorithm": e.algorithm,
            "burst": e.burst,
            "tiers": value(serde_json::to_value(&e.tiers)),
            "key": e.key,
            "cost": e.cost,
            "on_store_error": value(serde_json::to_value(e.on_store_error)),
        }),
    );
    if let Some(idem) = e.idempotency {
        ext.insert(
            "x-secure-api-idempotency".to_owned(),
            value(serde_json::to_value(idem)),
        );
    }
    ext.insert(
        "x-secure-api-body-limit".to_owned(),
        value(serde_json::to_value(e.body_limit)),
    );
    ext
}

/// A response header.
fn header(schema: JsonObject, description: &str) -> RefOr<Header> {
    let mut h = Header::new(RefOr::T(Schema::Object(schema)));
    h.description = Some(description.to_owned());
    RefOr::T(h)
}

fn retry_after() -> RefOr<Header> {
    let mut seconds = JsonObject::with_type(Type::Integer);
    seconds.minimum = Some(utoipa::Number::Int(1));
    header(
        seconds,
        "Whole seconds to wait before retrying (at least 1).",
    )
}

fn rate_limit_headers(response: &mut Response) {
    response.headers.insert(
        "RateLimit".to_owned(),
        header(
            JsonObject::with_type(Type::String),
            "The quota left in the current window (IETF draft-ietf-httpapi-ratelimit-headers): \
             `\"<policy>\";r=<remaining>;t=<seconds until full>`.",
        ),
    );
    response.headers.insert(
        "RateLimit-Policy".to_owned(),
        header(
            JsonObject::with_type(Type::String),
            "The policy that applies: `\"<policy>\";q=<quota>;w=<window seconds>`.",
        ),
    );
}

fn www_authenticate() -> RefOr<Header> {
    header(
        JsonObject::with_type(Type::String),
        "The RFC 6750 bearer challenge.",
    )
}

/// The problem types an endpoint's configuration can answer with, by status.
fn problem_types(
    e: &EndpointInfo,
    inputs: &[(InputSource, Node, &'static str)],
    spec: &crate::endpoint::EndpointSpec,
) -> BTreeMap<u16, Vec<ProblemType>> {
    let has = |source: InputSource| inputs.iter().any(|(s, ..)| *s == source);
    let (body, idem) = (has(InputSource::Body), e.idempotency);
    let public = matches!(e.auth, AuthInfo::Public);
    let mut list = Vec::new();
    if body || idem.is_some() {
        list.push(problems::MALFORMED_REQUEST);
    }
    if body {
        list.push(problems::NESTING_TOO_DEEP);
    }
    if let Some(idem) = idem {
        if idem.required {
            list.push(problems::IDEMPOTENCY_KEY_MISSING);
        }
        list.push(problems::IDEMPOTENCY_KEY_INVALID);
    }
    if !public {
        list.push(problems::INVALID_CREDENTIALS);
    }
    if matches!(spec.auth, AuthRequirement::Required(_)) && !authenticated_only(spec) {
        list.push(problems::FORBIDDEN);
    }
    if has(InputSource::Path) {
        list.push(problems::NOT_FOUND);
    }
    if idem.is_some() {
        list.push(problems::IDEMPOTENCY_IN_FLIGHT);
    }
    list.push(problems::PAYLOAD_TOO_LARGE);
    if body {
        list.push(problems::UNSUPPORTED_MEDIA_TYPE);
    }
    if !inputs.is_empty() {
        list.push(problems::VALIDATION_FAILED);
    }
    if idem.is_some() {
        list.push(problems::IDEMPOTENCY_KEY_REUSED);
        list.push(problems::IDEMPOTENCY_NOT_REPLAYABLE);
    }
    if limited(e) {
        list.push(problems::RATE_LIMITED);
    }
    list.push(problems::INTERNAL_ERROR);
    // A store that cannot answer: the rate limit's (a full store always; a failing one
    // unless the endpoint lets requests through), the idempotency store's, the revocation
    // store's.
    if limited(e) || idem.is_some() || !public {
        list.push(problems::SERVICE_UNAVAILABLE);
    }
    let mut by_status: BTreeMap<u16, Vec<ProblemType>> = BTreeMap::new();
    for p in list {
        by_status.entry(p.status()).or_default().push(p);
    }
    by_status
}

fn responses(
    e: &EndpointInfo,
    inputs: &[(InputSource, Node, &'static str)],
    spec: &crate::endpoint::EndpointSpec,
) -> Responses {
    let mut responses = Responses::new();
    let mut ok = Response::new("The handler's response (the annotations do not describe it).");
    if limited(e) {
        rate_limit_headers(&mut ok);
    }
    if e.idempotency.is_some() {
        ok.headers.insert(
            "Idempotent-Replayed".to_owned(),
            header(
                {
                    let mut s = JsonObject::with_type(Type::String);
                    s.enum_values = Some(vec![Value::from("true")]);
                    s
                },
                "`true` on a response replayed for a retried `Idempotency-Key`.",
            ),
        );
    }
    responses.responses.insert("2XX".to_owned(), RefOr::T(ok));
    for (status, types) in problem_types(e, inputs, spec) {
        let mut r = Response::new(
            types
                .iter()
                .map(|p| format!("`{}`: {}", p.type_uri(), p.detail()))
                .collect::<Vec<_>>()
                .join("\n\n"),
        );
        r.content.insert(
            PROBLEM_JSON.to_owned(),
            RefOr::T(Content::new(Some(problem_of(status, &types)))),
        );
        match status {
            401 | 403 => {
                r.headers
                    .insert("WWW-Authenticate".to_owned(), www_authenticate());
            }
            409 | 503 => {
                r.headers.insert("Retry-After".to_owned(), retry_after());
            }
            429 => {
                r.headers.insert("Retry-After".to_owned(), retry_after());
                rate_limit_headers(&mut r);
            }
            _ => {}
        }
        responses.responses.insert(status.to_string(), RefOr::T(r));
    }
    responses
}

/// The problem schema narrowed to `status` and the `type`s it can carry.
fn problem_of(status: u16, types: &[ProblemType]) -> RefOr<Schema> {
    let mut narrowed = JsonObject::with_type(SchemaType::AnyValue);
    let mut type_uri = JsonObject::with_type(SchemaType::AnyValue);
    type_uri.enum_values = Some(types.iter().map(|p| Value::from(p.type_uri())).collect());
    let mut code = JsonObject::with_type(SchemaType::AnyValue);
    code.enum_values = Some(vec![Value::from(status)]);
    narrowed
        .properties
        .insert("type".to_owned(), RefOr::T(Schema::Object(type_uri)));
    narrowed
        .properties
        .insert("status".to_owned(), RefOr::T(Schema::Object(code)));
    let mut all = AllOf::new();
    all.items = vec![
        RefOr::Ref(Ref::from_schema_name(PROBLEM_SCHEMA)),
        RefOr::T(Schema::Object(narrowed)),
    ];
    RefOr::T(Schema::AllOf(all))
}

fn string(description: &str, format: Option<&str>) -> RefOr<Schema> {
    let mut s = JsonObject::with_type(Type::String);
    s.description = Some(description.to_owned());
    s.format = format.map(|f| SchemaFormat::Custom(f.to_owned()));
    RefOr::T(Schema::Object(s))
}

/// RFC 9457 problem details, as every error response of the app is.
fn problem_schema() -> RefOr<Schema> {
    let mut s = JsonObject::with_type(Type::Object);
    s.description = Some(
        "An RFC 9457 problem (`application/problem+json`). `detail` is a fixed public \
         sentence of the problem type; `instance` names the error in the server's log."
            .to_owned(),
    );
    let mut status = JsonObject::with_type(Type::Integer);
    status.minimum = Some(utoipa::Number::Int(400));
    status.maximum = Some(utoipa::Number::Int(599));
    status.description = Some("The HTTP status code.".to_owned());
    let mut errors = Array::new(RefOr::Ref(Ref::from_schema_name(VIOLATION_SCHEMA)));
    errors.description = Some(
        "`validation-failed` only: every rule the input broke, in the order checked.".to_owned(),
    );
    let mut original = JsonObject::with_type(Type::Integer);
    original.description = Some(
        "`idempotency-response-not-replayable` only: the status the request with this key \
         answered."
            .to_owned(),
    );
    let props: [(&str, RefOr<Schema>); 7] = [
        (
            "type",
            string("The problem type's URI, from the registry.", Some("uri")),
        ),
        ("title", string("The problem type's title.", None)),
        ("status", RefOr::T(Schema::Object(status))),
        (
            "detail",
            string("The problem type's fixed public explanation.", None),
        ),
        (
            "instance",
            string(
                "`urn:uuid:<error id>`: the id under which the error was logged.",
                Some("uri"),
            ),
        ),
        ("errors", RefOr::T(Schema::Array(errors))),
        ("original_status", RefOr::T(Schema::Object(original))),
    ];
    for (name, schema) in props {
        s.properties.insert(name.to_owned(), schema);
    }
    s.required = ["type", "title", "status", "detail", "instance"]
        .map(str::to_owned)
        .to_vec();
    RefOr::T(Schema::Object(s))
}

/// One failed rule of a 422.
fn violation_schema() -> RefOr<Schema> {
    let mut s = JsonObject::with_type(Type::Object);
    s.description = Some(
        "A failed rule: where (a JSON Pointer into the input) and which (a stable code); \
         never the value."
            .to_owned(),
    );
    let mut bound = JsonObject::with_type(Type::Number);
    bound.description = Some("The rule's bound (`length` and `range`).".to_owned());
    let bound = RefOr::T(Schema::Object(bound));
    s.properties.insert(
        "pointer".to_owned(),
        string("The JSON Pointer (RFC 6901) of the offending member.", None),
    );
    s.properties.insert(
        "code".to_owned(),
        string(
            "The rule's code: `length`, `range`, `pattern`, `email`, `url`, `url_public`, \
             `ip`, `uuid`, `one_of`, `deny`, `required`, `type`, `unknown_field`, ..., or a \
             custom rule's own.",
            None,
        ),
    );
    s.properties.insert("min".to_owned(), bound.clone());
    s.properties.insert("max".to_owned(), bound);
    s.required = vec!["pointer".to_owned(), "code".to_owned()];
    s.additional_properties = Some(Box::new(AdditionalProperties::FreeForm(false)));
    RefOr::T(Schema::Object(s))
}

/// A duration in milliseconds in the largest whole unit up to hours: `24h`, `90s`, `0s`.
fn duration(ms: u64) -> String {
    for (unit, size) in [("h", 3_600_000), ("min", 60_000), ("s", 1000)] {
        if ms >= size && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    if ms == 0 {
        return "0s".to_owned();
    }
    format!("{ms}ms")
}

/// A size in bytes in the largest whole unit: `16 KiB`, `100 bytes`.
fn size(bytes: usize) -> String {
    for (unit, size) in [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{} {unit}", bytes / size);
        }
    }
    format!("{bytes} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actix_patterns_become_templates() {
        assert_eq!(
            openapi_path("/api/users/{id}"),
            ("/api/users/{id}".to_owned(), vec!["id".to_owned()])
        );
        assert_eq!(
            openapi_path(r"/a/{id:\d{2,3}}/b/{rest}*"),
            (
                "/a/{id}/b/{rest}".to_owned(),
                vec!["id".to_owned(), "rest".to_owned()]
            )
        );
        assert_eq!(openapi_path("/plain"), ("/plain".to_owned(), vec![]));
    }

    #[test]
    fn durations_and_sizes() {
        assert_eq!(duration(86_400_000), "24h");
        assert_eq!(duration(3_600_000 * 2), "2h");
        assert_eq!(duration(0), "0s");
        assert_eq!(duration(1500), "1500ms");
        assert_eq!(size(16 * 1024), "16 KiB");
        assert_eq!(size(100), "100 bytes");
    }
}
