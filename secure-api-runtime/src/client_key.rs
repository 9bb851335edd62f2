//! The store keys of rate limits: who is limited ([`Identity`]) under which policy, hashed
//! by a [`KeyDeriver`] into a [`LimitKey`].
//!
//! Keys are stable across processes when the deriver comes from a shared secret
//! ([`KeyDeriver::from_secret`], configured with `SecureApiBuilder::key_secret`): a policy
//! is identified by a hash of its method, route and tier ([`policy_id`], computed at compile
//! time for endpoints), and the client's identity is hashed with SipHash-1-3 (128-bit output)
//! keyed from the secret. Two instances with the same secret derive the same key for the
//! same client and policy, so they share one Redis record; clients, who do not know the
//! secret, cannot choose colliding keys.
//!
//! Internal: the endpoint runtime and the login guard derive keys, and stores receive
//! finished `LimitKey`s. Benchmarks reach it through `__private`.

use std::hash::Hasher as _;
use std::net::IpAddr;

use hmac::{Hmac, Mac as _};
use sha2::Sha256;
use siphasher::sip128::{Hasher128 as _, SipHasher13};

use crate::throttle::LimitKey;

/// The domain-separation label of the SipHash key derived from a key secret (HMAC-SHA256 of
/// this label under the secret). Changing it changes every key: a new version, never an edit.
const KEY_LABEL: &[u8] = b"secure-api/limit-keys/v1";

/// FNV-1a (64-bit) over the concatenation of `parts`, each followed by a `0xff` separator
/// (a byte that UTF-8 text never holds, so that `("ab", "c")` and `("a", "bc")` differ).
///
/// A `const fn`, so that `#[secure_endpoint]` computes its policy identifiers at compile
/// time: the request path never hashes a route. Policy identifiers need no secret (the
/// client-derived half of a key is keyed); they only need to be stable and distinct.
pub const fn policy_id(parts: &[&str]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let mut p = 0;
    while p < parts.len() {
        let bytes = parts[p].as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            hash ^= bytes[i] as u64;
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
            i += 1;
        }
        hash ^= 0xff;
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        p += 1;
    }
    hash
}

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

/// Derives store keys: a 128-bit SipHash-1-3 of (policy, identity) under a 128-bit key,
/// either derived from the app's key secret (stable across processes) or random per
/// process (enough for stores that live in one process).
///
/// The hashed bytes are a fixed layout, independent of the platform: the policy id
/// (little-endian `u64`), then a tag byte per part followed by the part: `4` and the 4
/// bytes of an IPv4 address, `6` and the 16 bytes of an IPv6 address, `2` and a
/// principal's UTF-8, `3` and an account name's UTF-8. Only the last part has a variable
/// length, and SipHash mixes in the total length, so no two identities share an input.
#[derive(Clone)]
pub struct KeyDeriver {
    hasher: SipHasher13,
    shared: bool,
}

impl std::fmt::Debug for KeyDeriver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key itself.
        f.debug_struct("KeyDeriver")
            .field("from_secret", &self.shared)
            .finish_non_exhaustive()
    }
}

impl Default for KeyDeriver {
    /// A deriver with a random per-process key.
    fn default() -> Self {
        KeyDeriver::random()
    }
}

impl KeyDeriver {
    /// A deriver with a random key: keys agree within this process only.
    pub fn random() -> Self {
        let key: [u8; 16] = crate::auth::jwt::random_bytes();
        KeyDeriver {
            hasher: SipHasher13::new_with_key(&key),
            shared: false,
        }
    }

    /// A deriver keyed from `secret`: every process with the same secret derives the same
    /// keys. The SipHash key is the first 16 bytes of HMAC-SHA256(secret, `KEY_LABEL`), so
    /// the secret itself is neither kept nor used directly.
    ///
    /// The caller checks the secret's length (`SecureApiBuilder::key_secret` refuses fewer
    /// than 32 bytes).
    pub fn from_secret(secret: &[u8]) -> Self {
        // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
        let mut mac = <Hmac<Sha256> as hmac::Mac>::new_from_slice(secret)
            .unwrap_or_else(|_| unreachable!("HMAC accepts keys of every length"));
        mac.update(KEY_LABEL);
        let digest = mac.finalize().into_bytes();
        let mut key = [0u8; 16];
        key.copy_from_slice(&digest[..16]);
        KeyDeriver {
            hasher: SipHasher13::new_with_key(&key),
            shared: true,
        }
    }

    /// Whether the key came from a secret (and so agrees across processes).
    pub fn is_from_secret(&self) -> bool {
        self.shared
    }

    /// The key of `identity` under policy `policy_id`.
    #[inline]
    pub fn key(&self, policy_id: u64, identity: &Identity<'_>) -> LimitKey {
        let mut h = self.hasher;
        h.write(&policy_id.to_le_bytes());
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
        let (a, b) = h.finish128().as_u64();
        LimitKey([a, b])
    }
}

fn write_ip(h: &mut SipHasher13, ip: &IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            h.write_u8(4);
            h.write(&v4.octets());
        }
        IpAddr::V6(v6) => {
            h.write_u8(6);
            h.write(&v6.octets());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";

    /// Policy ids are FNV-1a with a `0xff` after each part: pinned, so that a change of
    /// algorithm (which would move every client to a fresh key on deploy, and split a fleet
    /// running two versions) is a deliberate one. The values were computed independently of
    /// this code.
    #[test]
    fn policy_ids_are_fixed() {
        const ID: u64 = policy_id(&["secure-api/endpoint", "POST", "/api/users", ""]);
        assert_eq!(ID, 0xfca9_9579_6373_9495);
        assert_eq!(
            policy_id(&["secure-api/endpoint", "POST", "/api/users", "premium"]),
            0x1cb2_5e27_0e45_fe7a
        );
        // FNV-1a's offset basis for no input.
        assert_eq!(policy_id(&[]), 0xcbf2_9ce4_8422_2325);
        // Parts are delimited.
        assert_ne!(policy_id(&["ab", "c"]), policy_id(&["a", "bc"]));
        assert_ne!(policy_id(&["a", ""]), policy_id(&["a"]));
    }

    /// Keys from a fixed secret are fixed: every process, on every platform, derives these.
    /// The expected values come from an independent implementation of
    /// HMAC-SHA256 → SipHash-1-3 (128-bit) over the documented layout.
    #[test]
    fn keys_from_a_secret_are_fixed() {
        let d = KeyDeriver::from_secret(SECRET);
        let id = policy_id(&["secure-api/endpoint", "POST", "/api/users", ""]);
        let cases = [
            (
                Identity::Ip(ip("192.0.2.1")),
                [0x3d93_91f0_b8c3_2250, 0x13d2_a66a_322b_2bc4],
            ),
            (
                Identity::Ip(ip("2001:db8::")),
                [0xefb5_1447_1900_e4d3, 0xeffb_42da_31f1_e026],
            ),
            (
                Identity::Principal("alice"),
                [0xabfe_c17b_259a_3252, 0xbb1a_6e54_e432_70a1],
            ),
            (
                Identity::IpAndPrincipal(ip("192.0.2.1"), "alice"),
                [0x693a_0446_05d9_4c12, 0x2923_6fba_e6e6_6103],
            ),
        ];
        for (identity, expected) in cases {
            assert_eq!(d.key(id, &identity), LimitKey(expected), "{identity:?}");
        }
        let account = policy_id(&["secure-api/login/account", "login-account"]);
        assert_eq!(account, 0xf9b3_da1f_81c4_33ac);
        assert_eq!(
            d.key(account, &Identity::Account("alice")),
            LimitKey([0x5634_8297_fdcd_5575, 0x2bc7_a84b_0491_9c71])
        );
    }

    #[test]
    fn the_same_secret_gives_the_same_keys_and_another_secret_other_keys() {
        let identity = Identity::Principal("alice");
        let a = KeyDeriver::from_secret(SECRET).key(7, &identity);
        assert_eq!(a, KeyDeriver::from_secret(SECRET).key(7, &identity));
        let mut other = SECRET.to_vec();
        other[31] ^= 1;
        assert_ne!(a, KeyDeriver::from_secret(&other).key(7, &identity));
        // Random derivers agree with themselves only.
        let r = KeyDeriver::random();
        assert_eq!(r.key(7, &identity), r.key(7, &identity));
        assert_ne!(r.key(7, &identity), KeyDeriver::random().key(7, &identity));
        assert_ne!(r.key(7, &identity), a);
        assert!(KeyDeriver::from_secret(SECRET).is_from_secret());
        assert!(!r.is_from_secret());
    }

    #[test]
    fn keys_separate_policies_and_identities() {
        for d in [KeyDeriver::random(), KeyDeriver::from_secret(&[7; 32])] {
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
            assert_ne!(
                d.key(1, &Identity::IpAndPrincipal(ip("192.0.2.1"), "alice")),
                d.key(1, &Identity::Principal("alice"))
            );
        }
    }
}
