//! The endpoint inventory: every `#[secure_endpoint]` of the program, with its policies, as
//! the annotations wrote them.
//!
//! Each `#[secure_endpoint]` registers itself in a process-wide registry when it is compiled
//! into the program (the [`inventory`](https://docs.rs/inventory) crate: no list to keep up
//! to date by hand). [`SecureApi::inventory`] reads it, fills in what the app decides (its
//! default rate and its store-failure policy), and gives an [`Inventory`]:
//!
//! - as structs: [`Inventory::endpoints`], one [`EndpointInfo`] per endpoint, sorted by path
//!   then method;
//! - as JSON: [`Inventory::to_json`] (or `serde_json::to_value` of the inventory, or of one
//!   entry);
//! - as a table: its `Display`, one endpoint per line, which [`SecureApiBuilder::build`]
//!   logs at info level (target `secure_api::inventory`) the first time an app is built in
//!   the process;
//! - for review: [`Inventory::unannotated`] (neither `auth` nor `public`) and
//!   [`Inventory::state_changing_without_idempotency`]; [`Inventory::findings`] lists both
//!   with the reason, and [`SecureApiBuilder::strict_inventory`] refuses to build while there
//!   are any.
//!
//! The registry is global to the process: it holds every endpoint linked into the binary,
//! whether or not an app mounts it (handlers of a library that the binary links in, test
//! endpoints of a test binary). Endpoints are registered by the linker's constructor
//! sections, so an endpoint in a library crate of which nothing else is used may be dropped
//! by the linker along with the rest of that crate, and so be missing.
//!
//! ```
//! use secure_api_runtime::prelude::*;
//!
//! #[secure_endpoint(post("/doc/notes"), auth(roles("editor")), rate = "10/s", idempotent)]
//! async fn create_note() -> HttpResponse {
//!     HttpResponse::Created().finish()
//! }
//!
//! let api = SecureApi::builder().build();
//! let inventory = api.inventory();
//! let note = inventory
//!     .endpoints()
//!     .iter()
//!     .find(|e| e.path == Some("/doc/notes"))
//!     .unwrap();
//! assert_eq!(note.method, Some("POST"));
//! assert_eq!(note.auth.to_string(), r#"auth(roles("editor"))"#);
//! assert_eq!(note.rate.value, "10/s");
//! assert_eq!(note.idempotency.unwrap().required, true);
//! assert!(inventory.findings().iter().all(|f| f.handler != "create_note"));
//! ```
//!
//! [`SecureApiBuilder::build`]: crate::api::SecureApiBuilder::build
//! [`SecureApiBuilder::strict_inventory`]: crate::api::SecureApiBuilder::strict_inventory

use std::fmt;

use serde::Serialize;

use crate::api::SecureApi;
use crate::auth::rule::{AuthRequirement, Rule};
use crate::endpoint::{InputSource, KeyKind, Limit, Registration};
use crate::input::InputLimits;
use crate::store::OnStoreError;
use crate::throttle::{Algorithm, Policy};

/// Every endpoint of the program with its policies: see the [module](self).
///
/// Serializes as the JSON array of its [`EndpointInfo`]s; displays as a table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Inventory {
    endpoints: Vec<EndpointInfo>,
}

/// One endpoint: its route, handler and every policy, as written on its
/// `#[secure_endpoint]`, with the app's values where the endpoint has none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct EndpointInfo {
    /// The route's method in upper case (`"POST"`); `None` for an endpoint whose attribute
    /// has no route: it is mounted by hand, under a method the inventory does not know.
    pub method: Option<&'static str>,
    /// The route's path pattern (`"/api/users/{id}"`); `None` without a route.
    pub path: Option<&'static str>,
    /// The handler's name.
    pub handler: &'static str,
    /// The handler's module (`module_path!()`).
    pub module: &'static str,
    /// Who may call it.
    pub auth: AuthInfo,
    /// The base rate: `"100/s"`, or `"unlimited"` (`rate = "unlimited"`); from the app's
    /// default rate when the endpoint sets none.
    pub rate: Setting<String>,
    /// The algorithm of the rate and tiers: `"gcra"` or `"sliding_window"`; `None` when
    /// unlimited.
    pub algorithm: Option<&'static str>,
    /// How many requests a rested client may send at once (GCRA); `None` for a sliding
    /// window or when unlimited.
    pub burst: Option<u32>,
    /// Per-tier rates (`tier(premium = "1000/s")`), in the order written.
    pub tiers: Vec<TierInfo>,
    /// Whose quota a request is charged to: `"auto"` (the principal when authenticated,
    /// else the client IP: the default), `"ip"`, `"principal"` or `"ip_and_principal"`.
    pub key: &'static str,
    /// Units charged per request.
    pub cost: u32,
    /// `idempotent(...)`, or `None`.
    pub idempotency: Option<IdempotencyInfo>,
    /// The largest body accepted, in bytes: `max_body`, else the app's limit (see
    /// [`Inventory::with_input_limits`]).
    pub body_limit: Setting<usize>,
    /// What the rate limit does when its store fails: `"fail_closed"` or `"allow"`.
    pub on_store_error: Setting<&'static str>,
    /// The validated inputs among the handler's arguments, in order.
    pub inputs: Vec<InputInfo>,
    /// The endpoint's registration, for its OpenAPI operation (the inputs' schemas).
    #[cfg(feature = "openapi")]
    #[serde(skip)]
    pub(crate) registration: RegistrationRef,
}

/// An endpoint's entry in the registry, compared by address: one registration per
/// endpoint.
#[cfg(feature = "openapi")]
#[derive(Debug, Clone, Copy)]
pub(crate) struct RegistrationRef(pub(crate) &'static Registration);

#[cfg(feature = "openapi")]
impl PartialEq for RegistrationRef {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.0, other.0)
    }
}

#[cfg(feature = "openapi")]
impl Eq for RegistrationRef {}

/// A value of an endpoint's policy, and whether the endpoint or the app chose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Setting<T> {
    /// The value in force.
    pub value: T,
    /// Who chose it.
    pub origin: Origin,
}

/// Who chose a [`Setting`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Origin {
    /// The endpoint's attribute.
    Endpoint,
    /// The app (its builder's default, or the library's default).
    AppDefault,
}

/// Who may call an endpoint. Displays as written in the attribute: `public`, `auth`,
/// `auth(roles("admin"))`, or `none` for an endpoint with neither `auth` nor `public`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum AuthInfo {
    /// Neither `auth` nor `public`: a bearer token, when sent, is verified and names the
    /// client; without one the caller is anonymous. Listed by [`Inventory::unannotated`].
    Unannotated,
    /// `public`: credentials are never looked at.
    Public,
    /// `auth` or `auth(...)`: a verified token whose principal meets the rule.
    Required {
        /// The rule.
        rule: RuleInfo,
    },
}

/// A rule of `auth(...)`. Serializes as `"authenticated"`, `{"roles": [...]}`,
/// `{"permissions": [...]}`, `{"all": [...]}` or `{"any": [...]}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum RuleInfo {
    /// `auth`: any authenticated principal.
    Authenticated,
    /// `roles(...)`: every listed role.
    Roles(Vec<&'static str>),
    /// `permissions(...)`: every listed permission (typed ones by name).
    Permissions(Vec<&'static str>),
    /// `all(...)`, or several conditions side by side: every rule.
    All(Vec<RuleInfo>),
    /// `any(...)`: at least one rule.
    Any(Vec<RuleInfo>),
}

/// One tier of `tier(...)`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct TierInfo {
    /// The tier's name (`premium`; anonymous requests are in the tier `anonymous`).
    pub name: &'static str,
    /// The tier's rate, `"1000/s"`.
    pub rate: String,
}

/// `idempotent(...)` of an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct IdempotencyInfo {
    /// How long a completed response is kept for replay, in milliseconds.
    pub ttl_ms: u64,
    /// Whether a request without an `Idempotency-Key` is refused (400).
    pub required: bool,
    /// How long a retry waits for a request in flight before a 409, in milliseconds.
    pub wait_ms: u64,
}

/// A validated input of a handler.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct InputInfo {
    /// `"body"` (`Valid<T>`), `"query"` (`ValidQuery<T>`) or `"path"` (`ValidPath<T>`).
    pub source: &'static str,
    /// The type's path, `core::any::type_name::<T>()`.
    pub type_name: &'static str,
}

/// An endpoint the review flags, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct Finding {
    /// The endpoint's method, `None` without a route.
    pub method: Option<&'static str>,
    /// The endpoint's path, `None` without a route.
    pub path: Option<&'static str>,
    /// The handler's module.
    pub module: &'static str,
    /// The handler's name.
    pub handler: &'static str,
    /// Why it is flagged.
    pub issue: Issue,
}

/// Why the review flags an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Issue {
    /// Neither `auth` nor `public`: say who may call it.
    Unannotated,
    /// POST, PUT, PATCH or DELETE without `idempotent`.
    StateChangingWithoutIdempotency,
    /// No route in the attribute, so its method is unknown, and no `idempotent`: it may be
    /// mounted under a method that changes state.
    UnknownMethodWithoutIdempotency,
}

impl fmt::Display for Issue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Issue::Unannotated => {
                "neither `auth` nor `public`: add `auth(...)`, or `public` if anyone may call it"
            }
            Issue::StateChangingWithoutIdempotency => {
                "changes state without `idempotent`: add `idempotent` so that retries cannot repeat it"
            }
            Issue::UnknownMethodWithoutIdempotency => {
                "has no route, so its method is unknown, and no `idempotent`: give the attribute its route, or add `idempotent`"
            }
        })
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.method, self.path) {
            (Some(method), Some(path)) => write!(f, "{method} {path} ")?,
            _ => f.write_str("(no route) ")?,
        }
        write!(f, "({}::{}): {}", self.module, self.handler, self.issue)
    }
}

impl fmt::Display for AuthInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AuthInfo::Unannotated => f.write_str("none"),
            AuthInfo::Public => f.write_str("public"),
            AuthInfo::Required {
                rule: RuleInfo::Authenticated,
            } => f.write_str("auth"),
            // Several conditions side by side are written without `all(...)`.
            AuthInfo::Required {
                rule: RuleInfo::All(rules),
            } => {
                f.write_str("auth(")?;
                list(f, rules)?;
                f.write_str(")")
            }
            AuthInfo::Required { rule } => write!(f, "auth({rule})"),
        }
    }
}

fn list(f: &mut fmt::Formatter<'_>, rules: &[RuleInfo]) -> fmt::Result {
    for (i, rule) in rules.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{rule}")?;
    }
    Ok(())
}

fn names(f: &mut fmt::Formatter<'_>, key: &str, names: &[&str]) -> fmt::Result {
    write!(f, "{key}(")?;
    for (i, name) in names.iter().enumerate() {
        if i > 0 {
            f.write_str(", ")?;
        }
        write!(f, "{name:?}")?;
    }
    f.write_str(")")
}

impl fmt::Display for RuleInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RuleInfo::Authenticated => f.write_str("authenticated"),
            RuleInfo::Roles(roles) => names(f, "roles", roles),
            RuleInfo::Permissions(perms) => names(f, "permissions", perms),
            RuleInfo::All(rules) => {
                f.write_str("all(")?;
                list(f, rules)?;
                f.write_str(")")
            }
            RuleInfo::Any(rules) => {
                f.write_str("any(")?;
                list(f, rules)?;
                f.write_str(")")
            }
        }
    }
}

impl From<&Rule> for RuleInfo {
    fn from(rule: &Rule) -> Self {
        match rule {
            Rule::Authenticated => RuleInfo::Authenticated,
            Rule::Roles(roles) => RuleInfo::Roles(roles.to_vec()),
            Rule::Permissions(perms) => {
                RuleInfo::Permissions(perms.iter().map(|p| p.name()).collect())
            }
            Rule::All(rules) => RuleInfo::All(rules.iter().map(RuleInfo::from).collect()),
            Rule::Any(rules) => RuleInfo::Any(rules.iter().map(RuleInfo::from).collect()),
        }
    }
}

impl EndpointInfo {
    fn new(reg: &'static Registration, api: &SecureApi, limits: InputLimits) -> EndpointInfo {
        let spec = reg.spec;
        let shared = api.shared();
        let (rate, policy) = match &spec.limit {
            Limit::Unlimited => (
                Setting {
                    value: "unlimited".to_owned(),
                    origin: Origin::Endpoint,
                },
                None,
            ),
            Limit::Default => (
                Setting {
                    value: shared.default_policy.rate().to_string(),
                    origin: Origin::AppDefault,
                },
                Some(&shared.default_policy),
            ),
            Limit::Policy(policy) => (
                Setting {
                    value: policy.rate().to_string(),
                    origin: Origin::Endpoint,
                },
                Some(policy),
            ),
        };
        let algorithm = policy.map(|p| algorithm_name(p.algorithm()));
        let burst = policy
            .filter(|p| p.algorithm() == Algorithm::Gcra)
            .map(Policy::burst);
        let on_store_error = match spec.on_store_error {
            Some(choice) => Setting {
                value: on_store_error_name(choice),
                origin: Origin::Endpoint,
            },
            None => Setting {
                value: on_store_error_name(shared.on_limiter_error),
                origin: Origin::AppDefault,
            },
        };
        EndpointInfo {
            method: reg.route.map(|r| r.method),
            path: reg.route.map(|r| r.path),
            handler: spec.name,
            module: reg.module,
            auth: match &spec.auth {
                AuthRequirement::Optional => AuthInfo::Unannotated,
                AuthRequirement::Public => AuthInfo::Public,
                AuthRequirement::Required(rule) => AuthInfo::Required { rule: rule.into() },
            },
            rate,
            algorithm,
            burst,
            tiers: spec
                .tiers
                .iter()
                .map(|t| TierInfo {
                    name: t.policy.name(),
                    rate: t.policy.rate().to_string(),
                })
                .collect(),
            key: match spec.key {
                KeyKind::Auto => "auto",
                KeyKind::Ip => "ip",
                KeyKind::Principal => "principal",
                KeyKind::IpAndPrincipal => "ip_and_principal",
            },
            cost: spec.cost,
            idempotency: spec.idempotency.map(|i| IdempotencyInfo {
                ttl_ms: i.ttl_ms,
                required: i.required,
                wait_ms: i.wait_ms,
            }),
            body_limit: match spec.max_body {
                Some(bytes) => Setting {
                    value: bytes,
                    origin: Origin::Endpoint,
                },
                None => Setting {
                    value: limits.body_limit(),
                    origin: Origin::AppDefault,
                },
            },
            on_store_error,
            inputs: reg
                .inputs
                .iter()
                .map(|i| InputInfo {
                    source: match i.source {
                        InputSource::Body => "body",
                        InputSource::Query => "query",
                        InputSource::Path => "path",
                    },
                    type_name: (i.type_name)(),
                })
                .collect(),
            #[cfg(feature = "openapi")]
            registration: RegistrationRef(reg),
        }
    }

    /// Whether the method changes state: POST, PUT, PATCH or DELETE. `None` without a
    /// route (the method is unknown).
    pub fn is_state_changing(&self) -> Option<bool> {
        self.method
            .map(|m| matches!(m, "POST" | "PUT" | "PATCH" | "DELETE"))
    }

    /// Why the review flags this endpoint (empty when it passes): see
    /// [`Inventory::findings`].
    pub fn issues(&self) -> Vec<Issue> {
        let mut issues = Vec::new();
        if self.auth == AuthInfo::Unannotated {
            issues.push(Issue::Unannotated);
        }
        if self.idempotency.is_none() {
            match self.is_state_changing() {
                Some(true) => issues.push(Issue::StateChangingWithoutIdempotency),
                Some(false) => {}
                None => issues.push(Issue::UnknownMethodWithoutIdempotency),
            }
        }
        issues
    }
}

fn algorithm_name(algorithm: Algorithm) -> &'static str {
    match algorithm {
        Algorithm::Gcra => "gcra",
        Algorithm::SlidingWindow => "sliding_window",
    }
}

fn on_store_error_name(choice: OnStoreError) -> &'static str {
    match choice {
        OnStoreError::FailClosed => "fail_closed",
        OnStoreError::Allow => "allow",
    }
}

impl Inventory {
    /// Every registered endpoint, with `api`'s defaults and the default [`InputLimits`].
    pub(crate) fn of(api: &SecureApi) -> Inventory {
        Inventory::build(api, InputLimits::default())
    }

    fn build(api: &SecureApi, limits: InputLimits) -> Inventory {
        let mut endpoints: Vec<EndpointInfo> = ::inventory::iter::<Registration>
            .into_iter()
            .map(|reg| EndpointInfo::new(reg, api, limits))
            .collect();
        // Routes by path then method; endpoints without a route last; the handler breaks
        // ties (one route under several scopes).
        endpoints.sort_by(|a, b| {
            (a.path.is_none(), a.path, a.method, a.module, a.handler).cmp(&(
                b.path.is_none(),
                b.path,
                b.method,
                b.module,
                b.handler,
            ))
        });
        Inventory { endpoints }
    }

    /// The body limits of endpoints without `max_body` taken from `limits`: the
    /// [`InputLimits`] the app installs with `App::app_data` (the inventory is built from
    /// the [`SecureApi`], which does not see them; without this, the default 64 KiB).
    ///
    /// ```
    /// use secure_api_runtime::prelude::*;
    ///
    /// #[secure_endpoint(post("/doc/limits"), public, idempotent)]
    /// async fn upload() -> HttpResponse {
    ///     HttpResponse::Ok().finish()
    /// }
    ///
    /// let inventory = SecureApi::builder()
    ///     .build()
    ///     .inventory()
    ///     .with_input_limits(InputLimits::default().max_body(1024));
    /// let entry = inventory.endpoints().iter().find(|e| e.handler == "upload").unwrap();
    /// assert_eq!(entry.body_limit.value, 1024);
    /// ```
    pub fn with_input_limits(mut self, limits: InputLimits) -> Inventory {
        for e in &mut self.endpoints {
            if e.body_limit.origin == Origin::AppDefault {
                e.body_limit.value = limits.body_limit();
            }
        }
        self
    }

    /// Only the endpoints for which `keep` is true: e.g. those of one module, when a
    /// program links several apps' endpoints and each reviews its own.
    ///
    /// ```
    /// # let api = secure_api_runtime::SecureApi::builder().build();
    /// let mine = api.inventory().retain(|e| e.module.starts_with("my_app::"));
    /// assert!(mine.findings().is_empty());
    /// ```
    pub fn retain(mut self, keep: impl FnMut(&EndpointInfo) -> bool) -> Inventory {
        let mut keep = keep;
        self.endpoints.retain(|e| keep(e));
        self
    }

    /// The endpoints, sorted by path then method (endpoints without a route last).
    pub fn endpoints(&self) -> &[EndpointInfo] {
        &self.endpoints
    }

    /// The endpoints, owned.
    pub fn into_endpoints(self) -> Vec<EndpointInfo> {
        self.endpoints
    }

    /// The endpoints whose attribute has neither `auth` nor `public`: who may call them was
    /// never said (anyone may, and a token is used when sent).
    pub fn unannotated(&self) -> Vec<&EndpointInfo> {
        self.endpoints
            .iter()
            .filter(|e| e.auth == AuthInfo::Unannotated)
            .collect()
    }

    /// The endpoints that may change state without `idempotent`, so that a retried request
    /// may do its work twice: POST, PUT, PATCH and DELETE routes, and, conservatively,
    /// endpoints without a route (their method is unknown; give the attribute its route to
    /// have them judged by it).
    pub fn state_changing_without_idempotency(&self) -> Vec<&EndpointInfo> {
        self.endpoints
            .iter()
            .filter(|e| e.idempotency.is_none() && e.is_state_changing() != Some(false))
            .collect()
    }

    /// Every flagged endpoint with each reason: [`unannotated`](Self::unannotated) and
    /// [`state_changing_without_idempotency`](Self::state_changing_without_idempotency)
    /// together, in the inventory's order. What
    /// [`strict_inventory`](crate::api::SecureApiBuilder::strict_inventory) refuses.
    pub fn findings(&self) -> Vec<Finding> {
        self.endpoints
            .iter()
            .flat_map(|e| {
                e.issues().into_iter().map(|issue| Finding {
                    method: e.method,
                    path: e.path,
                    module: e.module,
                    handler: e.handler,
                    issue,
                })
            })
            .collect()
    }

    /// The inventory as JSON: an array of endpoints.
    ///
    /// ```
    /// # let api = secure_api_runtime::SecureApi::builder().build();
    /// let json = api.inventory().to_json();
    /// assert!(json.is_array());
    /// ```
    pub fn to_json(&self) -> serde_json::Value {
        // Only strings, numbers, booleans, arrays and objects with string keys.
        serde_json::to_value(self).unwrap_or(serde_json::Value::Null)
    }

    /// The number of endpoints.
    pub fn len(&self) -> usize {
        self.endpoints.len()
    }

    /// Whether there are no endpoints.
    pub fn is_empty(&self) -> bool {
        self.endpoints.is_empty()
    }
}

impl<'a> IntoIterator for &'a Inventory {
    type Item = &'a EndpointInfo;
    type IntoIter = std::slice::Iter<'a, EndpointInfo>;

    fn into_iter(self) -> Self::IntoIter {
        self.endpoints.iter()
    }
}

/// A duration in milliseconds in the largest whole unit up to hours: `24h`, `90s`,
/// `1500ms`.
fn duration(ms: u64) -> String {
    for (unit, size) in [("h", 3_600_000), ("min", 60_000), ("s", 1000)] {
        if ms >= size && ms.is_multiple_of(size) {
            return format!("{}{unit}", ms / size);
        }
    }
    format!("{ms}ms")
}

/// A size in bytes in the largest whole unit: `16 KiB`, `1 MiB`, `100 B`.
fn size(bytes: usize) -> String {
    for (unit, size) in [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)] {
        if bytes >= size && bytes.is_multiple_of(size) {
            return format!("{} {unit}", bytes / size);
        }
    }
    format!("{bytes} B")
}

fn defaulted(text: String, origin: Origin) -> String {
    match origin {
        Origin::Endpoint => text,
        Origin::AppDefault => format!("{text} (default)"),
    }
}

const HEADER: [&str; 12] = [
    "METHOD",
    "PATH",
    "HANDLER",
    "AUTH",
    "RATE",
    "ALGORITHM",
    "BURST",
    "TIERS",
    "KEY",
    "COST",
    "IDEMPOTENT",
    "BODY",
];

impl EndpointInfo {
    /// The cells of this endpoint's line of the table, in [`HEADER`]'s order, then the
    /// store-failure policy.
    fn cells(&self) -> [String; 13] {
        let dash = || "-".to_owned();
        [
            self.method.unwrap_or("*").to_owned(),
            self.path.unwrap_or("(no route)").to_owned(),
            format!("{}::{}", self.module, self.handler),
            self.auth.to_string(),
            defaulted(self.rate.value.clone(), self.rate.origin),
            self.algorithm.map_or_else(dash, str::to_owned),
            self.burst.map_or_else(dash, |b| b.to_string()),
            if self.tiers.is_empty() {
                dash()
            } else {
                self.tiers
                    .iter()
                    .map(|t| format!("{}={}", t.name, t.rate))
                    .collect::<Vec<_>>()
                    .join(" ")
            },
            self.key.to_owned(),
            self.cost.to_string(),
            match self.idempotency {
                None => "no".to_owned(),
                Some(i) => format!(
                    "{}, key {}",
                    duration(i.ttl_ms),
                    if i.required { "required" } else { "optional" }
                ),
            },
            defaulted(size(self.body_limit.value), self.body_limit.origin),
            defaulted(
                self.on_store_error.value.to_owned(),
                self.on_store_error.origin,
            ),
        ]
    }
}

/// The table: a header line, then one line per endpoint, columns aligned (padded with
/// spaces, two between columns, no trailing spaces). `(default)` marks the app's values;
/// `*` and `(no route)` an endpoint without a route.
impl fmt::Display for Inventory {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut rows = vec![{
            let mut header = HEADER.map(str::to_owned).to_vec();
            header.push("ON STORE ERROR".to_owned());
            header
        }];
        rows.extend(self.endpoints.iter().map(|e| e.cells().to_vec()));
        let columns = rows[0].len();
        let widths: Vec<usize> = (0..columns)
            .map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0))
            .collect();
        for (i, row) in rows.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            let mut line = String::new();
            for (c, cell) in row.iter().enumerate() {
                line.push_str(cell);
                if c + 1 < columns {
                    let pad = widths[c] - cell.chars().count() + 2;
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            f.write_str(line.trim_end())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_sizes_in_their_largest_whole_unit() {
        assert_eq!(duration(86_400_000), "24h");
        assert_eq!(duration(120_000), "2min");
        assert_eq!(duration(3_600_000), "1h");
        assert_eq!(duration(90_000), "90s");
        assert_eq!(duration(1500), "1500ms");
        assert_eq!(duration(0), "0ms");
        assert_eq!(size(16 * 1024), "16 KiB");
        assert_eq!(size(1 << 20), "1 MiB");
        assert_eq!(size(1000), "1000 B");
    }

    #[test]
    fn rules_display_as_written() {
        let rule = AuthInfo::Required {
            rule: RuleInfo::All(vec![
                RuleInfo::Roles(vec!["admin"]),
                RuleInfo::Any(vec![
                    RuleInfo::Permissions(vec!["a:b", "c"]),
                    RuleInfo::Roles(vec!["x"]),
                ]),
            ]),
        };
        assert_eq!(
            rule.to_string(),
            r#"auth(roles("admin"), any(permissions("a:b", "c"), roles("x")))"#
        );
        let one = AuthInfo::Required {
            rule: RuleInfo::Any(vec![RuleInfo::Roles(vec!["a"]), RuleInfo::Roles(vec!["b"])]),
        };
        assert_eq!(one.to_string(), r#"auth(any(roles("a"), roles("b")))"#);
        assert_eq!(AuthInfo::Unannotated.to_string(), "none");
        assert_eq!(AuthInfo::Public.to_string(), "public");
    }
}
