//! The authorization requirement of an endpoint, as `#[secure_endpoint]` generates it
//! (`auth(...)`, `public`, or neither). Reached by generated code through `__private`; users
//! write the attribute, never these values.

use super::Principal;

/// A permission of a rule: a string, or a typed enum variant resolved at run time.
#[derive(Clone, Copy)]
pub enum PermissionRef {
    /// `permissions("users:delete")`.
    Name(&'static str),
    /// `permissions(Perm::UsersDelete)`.
    Typed(fn() -> &'static str),
}

impl PermissionRef {
    pub(crate) fn name(&self) -> &'static str {
        match self {
            PermissionRef::Name(n) => n,
            PermissionRef::Typed(f) => f(),
        }
    }
}

impl std::fmt::Debug for PermissionRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", self.name())
    }
}

/// An authorization rule of `auth(...)`.
#[derive(Debug, Clone, Copy)]
pub enum Rule {
    /// Any verified principal.
    Authenticated,
    /// Every listed role.
    Roles(&'static [&'static str]),
    /// Every listed permission.
    Permissions(&'static [PermissionRef]),
    /// Every rule.
    All(&'static [Rule]),
    /// At least one rule.
    Any(&'static [Rule]),
}

impl Rule {
    /// Whether `principal` satisfies the rule.
    pub fn allows(&self, principal: &Principal) -> bool {
        match self {
            Rule::Authenticated => true,
            Rule::Roles(roles) => roles.iter().all(|r| principal.has_role(r)),
            Rule::Permissions(perms) => perms.iter().all(|p| principal.has_permission(p.name())),
            Rule::All(rules) => rules.iter().all(|r| r.allows(principal)),
            Rule::Any(rules) => rules.iter().any(|r| r.allows(principal)),
        }
    }
}

/// How an endpoint treats credentials.
#[derive(Debug, Clone, Copy)]
pub enum AuthRequirement {
    /// No `auth` option: a bearer token, when sent, is verified (401 if invalid) and its
    /// principal used for rate limits; no token means anonymous.
    Optional,
    /// `public`: credentials are never looked at.
    Public,
    /// `auth(...)`: a valid token is required (401) and must satisfy the rule (403).
    Required(Rule),
}
