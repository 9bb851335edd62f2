//! The typed model of `#[secure_endpoint(...)]`: options as written (with their tokens,
//! for spans), and the checked endpoint that expansion works from.

use syn::{Ident, LitInt, LitStr};

/// An option as written: its key (for spans) and its value.
pub struct Opt<T> {
    pub key: Ident,
    pub value: T,
}

/// `post("/api/users")`.
pub struct Route {
    pub method: Ident,
    pub path: LitStr,
}

/// One entry of `tier(premium = "1000/s", ...)`.
pub struct Tier {
    pub name: Ident,
    pub rate: LitStr,
}

/// `idempotent(ttl = "24h", required = true, wait = "2s")`.
#[derive(Default)]
pub struct IdempotentArgs {
    pub ttl: Option<Opt<LitStr>>,
    pub required: Option<Opt<syn::LitBool>>,
    pub wait: Option<Opt<LitStr>>,
}

pub const IDEMPOTENT_KEYS: &[&str] = &["ttl", "required", "wait"];

/// A condition of `auth(...)`, as written.
pub enum Cond {
    Roles(Ident, Vec<LitStr>),
    Permissions(Ident, Vec<PermItem>),
    Any(Ident, Vec<Cond>),
    All(Ident, Vec<Cond>),
}

/// A permission: a string, or a variant of a typed enum (`Perm::UsersDelete`).
pub enum PermItem {
    Name(LitStr),
    Typed(syn::Path),
}

pub const AUTH_KEYS: &[&str] = &["roles", "permissions", "any", "all"];

/// The options as parsed.
#[derive(Default)]
pub struct Args {
    pub route: Option<Route>,
    pub rate: Option<Opt<LitStr>>,
    pub burst: Option<Opt<LitInt>>,
    pub algorithm: Option<Opt<LitStr>>,
    pub tiers: Option<Opt<Vec<Tier>>>,
    pub key: Option<Opt<LitStr>>,
    pub cost: Option<Opt<LitInt>>,
    pub max_body: Option<Opt<LitStr>>,
    pub krate: Option<Opt<syn::Path>>,
    pub idempotent: Option<Opt<IdempotentArgs>>,
    pub auth: Option<Opt<Vec<Cond>>>,
    pub public: Option<Opt<()>>,
    pub on_store_error: Option<Opt<LitStr>>,
}

/// Route methods, as written in the attribute.
pub const METHODS: &[&str] = &["get", "post", "put", "patch", "delete", "head", "options"];

/// Every option key, for parsing and suggestions.
pub const OPTION_KEYS: &[&str] = &[
    "get",
    "post",
    "put",
    "patch",
    "delete",
    "head",
    "options",
    "rate",
    "burst",
    "algorithm",
    "tier",
    "key",
    "cost",
    "max_body",
    "idempotent",
    "auth",
    "public",
    "on_store_error",
    "crate",
];

pub const ALGORITHMS: &[&str] = &["gcra", "sliding_window"];
pub const KEYS: &[&str] = &["ip", "principal", "ip_and_principal"];
pub const ON_STORE_ERROR: &[&str] = &["fail_closed", "allow"];

/// A checked rate: `count` per `secs`.
#[derive(Clone, Copy)]
pub struct RateValue {
    pub count: u32,
    pub secs: u64,
}

pub enum Limit {
    Unlimited,
    Default,
    Rate {
        rate: RateValue,
        burst: Option<u32>,
        sliding: bool,
    },
}

/// Checked `idempotent(...)`.
pub struct Idempotency {
    pub ttl_ms: u64,
    pub required: bool,
    pub wait_ms: u64,
}

/// Who may call the endpoint (`AuthRequirement` at run time).
pub enum Auth {
    /// Neither `auth` nor `public`: a bearer token, when sent, is verified and names the
    /// client; without one the caller is anonymous.
    Optional,
    /// `public`: credentials are never looked at.
    Public,
    /// `auth` or `auth(...)`: a verified token is required, and its principal must meet
    /// every condition listed (none: any authenticated principal).
    Required(Vec<Cond>),
}

/// The checked endpoint.
pub struct Endpoint<'a> {
    pub func: &'a syn::ItemFn,
    pub route: Option<(String, String)>,
    pub limit: Limit,
    pub sliding: bool,
    pub tiers: Vec<(String, RateValue)>,
    pub key: &'static str,
    pub cost: u32,
    pub max_body: Option<u64>,
    pub krate: Option<syn::Path>,
    pub idempotency: Option<Idempotency>,
    pub auth: Auth,
    /// `on_store_error`: the name of the runtime's `OnStoreError` variant, if set.
    pub on_store_error: Option<&'static str>,
    /// The handler's argument types, in order.
    pub arg_types: Vec<&'a syn::Type>,
}
