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

    /// The permissions (OAuth scopes) that `principal` lacks for the rule, when granting
    /// them would satisfy it: the missing permissions of a failed `permissions(..)`, of
    /// every failed part of an `all(..)`, or of the first alternative of an `any(..)` that
    /// scopes alone could satisfy. Empty when the rule holds, or when what is missing is a
    /// role (scopes cannot grant one). For the `scope` attribute of the 403's RFC 6750
    /// challenge.
    pub(crate) fn missing_scopes(&self, principal: &Principal, out: &mut Vec<&'static str>) {
        match self {
            Rule::Authenticated | Rule::Roles(_) => {}
            Rule::Permissions(perms) => {
                for p in perms.iter().map(PermissionRef::name) {
                    if !principal.has_permission(p) && !out.contains(&p) {
                        out.push(p);
                    }
                }
            }
            Rule::All(rules) => {
                for rule in rules.iter().filter(|r| !r.allows(principal)) {
                    rule.missing_scopes(principal, out);
                }
            }
            Rule::Any(rules) => {
                if rules.iter().any(|r| r.allows(principal)) {
                    return;
                }
                if let Some(rule) = rules.iter().find(|r| r.scopes_suffice(principal)) {
                    rule.missing_scopes(principal, out);
                }
            }
        }
    }

    /// Whether granting the missing permissions alone would satisfy the rule.
    fn scopes_suffice(&self, principal: &Principal) -> bool {
        match self {
            Rule::Authenticated | Rule::Permissions(_) => true,
            Rule::Roles(roles) => roles.iter().all(|r| principal.has_role(r)),
            Rule::All(rules) => rules.iter().all(|r| r.scopes_suffice(principal)),
            Rule::Any(rules) => rules.iter().any(|r| r.scopes_suffice(principal)),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn missing(rule: Rule, principal: &Principal) -> Vec<&'static str> {
        let mut out = Vec::new();
        rule.missing_scopes(principal, &mut out);
        out
    }

    #[test]
    fn missing_scopes_name_what_a_grant_of_scopes_would_fix() {
        const READ: &[PermissionRef] = &[PermissionRef::Name("read"), PermissionRef::Name("write")];
        const ADMIN: Rule = Rule::Roles(&["admin"]);
        let mut p = Principal::new("u");
        p.permissions = vec!["read".into()];
        assert_eq!(missing(Rule::Permissions(READ), &p), ["write"]);
        assert!(missing(ADMIN, &p).is_empty(), "a role is not a scope");
        assert!(missing(Rule::Authenticated, &p).is_empty());
        // all(..): every failing part; a role part adds nothing.
        const ALL: &[Rule] = &[
            Rule::Roles(&["admin"]),
            Rule::Permissions(&[PermissionRef::Name("x")]),
        ];
        assert_eq!(missing(Rule::All(ALL), &p), ["x"]);
        // any(..): the first alternative that scopes can satisfy.
        const ANY: &[Rule] = &[ADMIN, Rule::Permissions(&[PermissionRef::Name("y")])];
        assert_eq!(missing(Rule::Any(ANY), &p), ["y"]);
        const ROLES_ONLY: &[Rule] = &[ADMIN, Rule::Roles(&["staff"])];
        assert!(missing(Rule::Any(ROLES_ONLY), &p).is_empty());
        p.roles = vec!["admin".into()];
        assert!(missing(Rule::Any(ANY), &p).is_empty(), "the rule holds");
        // Duplicates are named once.
        const TWICE: &[Rule] = &[
            Rule::Permissions(&[PermissionRef::Name("z")]),
            Rule::Permissions(&[PermissionRef::Name("z")]),
        ];
        assert_eq!(missing(Rule::All(TWICE), &Principal::new("v")), ["z"]);
    }
}
