//! Claims as providers send them: a verified token's claims into a [`Principal`].

use serde_json::Value;

use crate::auth::{DEFAULT_TIER, Principal};

/// Where roles, permissions and the tier are read from. Every place is a JSON Pointer
/// (RFC 6901) into the claims.
#[derive(Debug, Clone)]
pub(crate) struct ClaimMapping {
    /// Roles: the union of these claims.
    pub(crate) roles: Vec<String>,
    /// Permissions besides the scopes: the union of these claims.
    pub(crate) permissions: Vec<String>,
    /// Whether the OAuth scopes (`scope`, `scp`) are permissions.
    pub(crate) scopes: bool,
    /// The tier claim; [`DEFAULT_TIER`] when absent.
    pub(crate) tier: Option<String>,
}

impl Default for ClaimMapping {
    fn default() -> Self {
        ClaimMapping {
            roles: Vec::new(),
            permissions: Vec::new(),
            scopes: true,
            tier: None,
        }
    }
}

/// Whether `pointer` is a JSON Pointer to a claim: `/` followed by reference tokens, `~`
/// only as `~0` or `~1`.
pub(crate) fn valid_pointer(pointer: &str) -> bool {
    pointer.len() > 1
        && pointer.starts_with('/')
        && pointer
            .split('~')
            .skip(1)
            .all(|rest| rest.starts_with('0') || rest.starts_with('1'))
}

/// The JSON Pointer of the claim at `segments` (each escaped: `~` as `~0`, `/` as `~1`).
pub(crate) fn pointer_of<'a>(segments: impl IntoIterator<Item = &'a str>) -> String {
    let mut pointer = String::new();
    for segment in segments {
        pointer.push('/');
        pointer.push_str(&segment.replace('~', "~0").replace('/', "~1"));
    }
    pointer
}

/// The strings of a claim value: each string of an array, or the space-separated words of
/// a string. Anything else gives nothing.
fn strings_into(value: Option<&Value>, out: &mut Vec<String>) {
    let mut push = |s: &str| {
        if !s.is_empty() && !out.iter().any(|o| o == s) {
            out.push(s.to_owned());
        }
    };
    match value {
        Some(Value::String(s)) => s.split_ascii_whitespace().for_each(&mut push),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).for_each(push),
        _ => {}
    }
}

impl ClaimMapping {
    /// The principal of verified `claims` whose subject is `subject`.
    pub(crate) fn principal(&self, claims: &Value, subject: String) -> Principal {
        let mut roles = Vec::new();
        for pointer in &self.roles {
            strings_into(claims.pointer(pointer), &mut roles);
        }
        let mut permissions = Vec::new();
        if self.scopes {
            strings_into(claims.get("scope"), &mut permissions);
            strings_into(claims.get("scp"), &mut permissions);
        }
        for pointer in &self.permissions {
            strings_into(claims.pointer(pointer), &mut permissions);
        }
        let tier = self
            .tier
            .as_deref()
            .and_then(|p| claims.pointer(p))
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .unwrap_or(DEFAULT_TIER)
            .to_owned();
        let text = |name: &str| {
            claims
                .get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
        };
        Principal {
            subject,
            roles,
            permissions,
            tier,
            token_id: text("jti"),
            session_id: text("sid"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn pointers() {
        assert!(valid_pointer("/realm_access/roles"));
        assert!(valid_pointer("/https:~1~1example.com~1roles"));
        assert!(!valid_pointer(""));
        assert!(!valid_pointer("/"));
        assert!(!valid_pointer("realm_access.roles"));
        assert!(!valid_pointer("/a~2b"));
        assert!(!valid_pointer("/a~"));
        assert_eq!(
            pointer_of(["https://example.com/roles"]),
            "/https:~1~1example.com~1roles"
        );
        assert_eq!(
            pointer_of(["resource_access", "my~api", "roles"]),
            "/resource_access/my~0api/roles"
        );
    }

    #[test]
    fn keycloak_auth0_and_entra_claims() {
        let mapping = ClaimMapping {
            roles: vec![
                "/realm_access/roles".into(),
                "/resource_access/orders-api/roles".into(),
                pointer_of(["https://example.com/roles"]),
            ],
            permissions: vec!["/permissions".into()],
            scopes: true,
            tier: Some("/plan".into()),
        };
        let claims = json!({
            "sub": "u1", "jti": "j1", "sid": "s1",
            "scope": "openid  read:users write:users",
            "scp": ["read:users", "admin:all"],
            "permissions": ["delete:users"],
            "realm_access": {"roles": ["user", "offline_access"]},
            "resource_access": {"orders-api": {"roles": ["orders-admin"]}, "other": {"roles": ["x"]}},
            "https://example.com/roles": ["editor", 7, null],
            "plan": "premium",
        });
        let p = mapping.principal(&claims, "u1".into());
        assert_eq!(
            p.roles,
            ["user", "offline_access", "orders-admin", "editor"]
        );
        assert_eq!(
            p.permissions,
            [
                "openid",
                "read:users",
                "write:users",
                "admin:all",
                "delete:users"
            ]
        );
        assert_eq!(p.tier, "premium");
        assert_eq!(p.token_id.as_deref(), Some("j1"));
        assert_eq!(p.session_id.as_deref(), Some("s1"));

        // Nothing configured: scopes only, the default tier.
        let p = ClaimMapping::default().principal(&json!({"scp": "a b", "plan": 1}), "u".into());
        assert_eq!(p.permissions, ["a", "b"]);
        assert!(p.roles.is_empty());
        assert_eq!(p.tier, DEFAULT_TIER);
        assert_eq!(p.token_id, None);

        // Scopes switched off.
        let no_scopes = ClaimMapping {
            scopes: false,
            ..ClaimMapping::default()
        };
        assert!(
            no_scopes
                .principal(&claims, "u".into())
                .permissions
                .is_empty()
        );
    }
}
