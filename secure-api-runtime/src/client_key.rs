//! The store keys of rate limits: who is limited ([`Identity`]) under which policy, hashed
//! by a [`KeyDeriver`] into a [`LimitKey`].
//!
//! Internal: the endpoint runtime and the login guard derive keys, and stores receive
//! finished `LimitKey`s. Benchmarks reach it through `__private`.

use std::hash::{BuildHasher, Hasher, RandomState};
use std::net::IpAddr;

use crate::throttle::LimitKey;

/// Who a rate limit is kept for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity<'a> {
    /// An anonymous client, by address (IPv6 grouped by prefix).
    Ip(IpAddr),
    /// An authenticated principal, by verified subject.
    Principal(&'a str),
    /// Both: a principal from one address.
    IpAndPrincipal(IpAddr, &'a str),
    /// An account named at login, before anyone is authenticated: the normalised
    /// username ([`crate::auth::login::normalize_username`]), whether or not the account
    /// exists. Hashed apart from principals, so that a login name and a subject with the
    /// same spelling never share a key.
    Account(&'a str),
}

/// Derives store keys: a 128-bit hash of (policy, identity) keyed with per-process random
/// keys, so that clients cannot choose colliding keys.
#[derive(Debug, Clone)]
pub struct KeyDeriver {
    a: RandomState,
    b: RandomState,
}

impl Default for KeyDeriver {
    fn default() -> Self {
        KeyDeriver {
            a: RandomState::new(),
            b: RandomState::new(),
        }
    }
}

impl KeyDeriver {
    /// The key of `identity` under policy `policy_id`.
    pub fn key(&self, policy_id: u64, identity: &Identity<'_>) -> LimitKey {
        LimitKey([
            self.one(&self.a, policy_id, identity),
            self.one(&self.b, policy_id, identity),
        ])
    }

    fn one(&self, state: &RandomState, policy_id: u64, identity: &Identity<'_>) -> u64 {
        let mut h = state.build_hasher();
        h.write_u64(policy_id);
        match identity {
            Identity::Ip(ip) => write_ip(&mut h, ip),
            Identity::Principal(p) => {
                h.write_u8(2);
                h.write(p.as_bytes());
            }
            Identity::IpAndPrincipal(ip, p) => {
                write_ip(&mut h, ip);
                h.write_u8(2);
                h.write(p.as_bytes());
            }
            Identity::Account(name) => {
                h.write_u8(3);
                h.write(name.as_bytes());
            }
        }
        h.finish()
    }
}

fn write_ip(h: &mut impl Hasher, ip: &IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            h.write_u8(4);
            h.write_u32(u32::from(*v4));
        }
        IpAddr::V6(v6) => {
            h.write_u8(6);
            h.write_u128(u128::from(*v6));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_separate_policies_and_identities() {
        let d = KeyDeriver::default();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let a = d.key(1, &Identity::Ip(ip("192.0.2.1")));
        assert_eq!(a, d.key(1, &Identity::Ip(ip("192.0.2.1"))));
        assert_ne!(a, d.key(2, &Identity::Ip(ip("192.0.2.1"))));
        assert_ne!(a, d.key(1, &Identity::Ip(ip("192.0.2.2"))));
        assert_ne!(
            d.key(1, &Identity::Principal("alice")),
            d.key(1, &Identity::Principal("bob"))
        );
        assert_ne!(
            d.key(1, &Identity::Account("alice")),
            d.key(1, &Identity::Principal("alice"))
        );
        assert_eq!(
            d.key(1, &Identity::Account("alice")),
            d.key(1, &Identity::Account("alice"))
        );
    }
}
