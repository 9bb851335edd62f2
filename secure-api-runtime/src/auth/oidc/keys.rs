//! A JWK set (RFC 7517) as verification keys: which keys are usable, and which key verifies
//! a token.
//!
//! A key is used only for signatures (`use` absent or `sig`; `key_ops`, when present,
//! including `verify`), only with the algorithms its type allows (RSA: RS256, PS256; EC on
//! P-256: ES256; OKP on Ed25519: EdDSA), only with its own `alg` when it names one, and only
//! with an algorithm the configuration allows. Symmetric (`oct`, HMAC) keys are refused: a
//! key published in a JWK set is public, and an HMAC key that is public lets anyone sign.
//! RSA keys shorter than 2048 bits are refused.

use std::collections::{HashMap, HashSet};
use std::fmt;

use base64::Engine;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde_json::Value;

/// The most keys read from one JWK set; the rest are ignored (with a warning).
pub(crate) const MAX_KEYS: usize = 100;

/// The shortest RSA modulus accepted, in bits.
pub(crate) const MIN_RSA_BITS: usize = 2048;

/// A set of the algorithms a provider's key may verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct AlgSet(u8);

impl AlgSet {
    /// The algorithms a provider's tokens may use, in bit order.
    pub(crate) const SUPPORTED: [Algorithm; 4] = [
        Algorithm::RS256,
        Algorithm::PS256,
        Algorithm::ES256,
        Algorithm::EdDSA,
    ];

    /// Every supported algorithm.
    #[cfg(test)]
    pub(crate) const ALL: AlgSet = AlgSet(0b1111);

    fn bit(alg: Algorithm) -> Option<u8> {
        Self::SUPPORTED
            .iter()
            .position(|a| *a == alg)
            .map(|i| 1 << i)
    }

    /// The set of one algorithm; `None` when it is not supported.
    pub(crate) fn of(alg: Algorithm) -> Option<AlgSet> {
        Self::bit(alg).map(AlgSet)
    }

    pub(crate) fn contains(self, alg: Algorithm) -> bool {
        Self::bit(alg).is_some_and(|b| self.0 & b != 0)
    }

    pub(crate) fn union(self, other: AlgSet) -> AlgSet {
        AlgSet(self.0 | other.0)
    }

    fn intersection(self, other: AlgSet) -> AlgSet {
        AlgSet(self.0 & other.0)
    }

    pub(crate) fn is_empty(self) -> bool {
        self.0 == 0
    }

    /// The algorithms of the set.
    pub(crate) fn iter(self) -> impl Iterator<Item = Algorithm> {
        Self::SUPPORTED
            .into_iter()
            .filter(move |a| self.contains(*a))
    }
}

/// One usable key.
pub(crate) struct Key {
    /// The algorithms it may verify (its `alg`, or what its type allows, within the
    /// configuration's).
    pub(crate) algs: AlgSet,
    pub(crate) decoding: DecodingKey,
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("algs", &self.algs)
            .finish_non_exhaustive()
    }
}

/// The usable keys of a JWK set.
#[derive(Debug, Default)]
pub(crate) struct KeySet {
    /// Keys by `kid` (several keys may share one).
    by_kid: HashMap<String, Vec<Key>>,
    /// Keys without a `kid`.
    unnamed: Vec<Key>,
    /// The `kid`s of keys in the document that were refused: a token naming one is refused
    /// without asking for a refresh.
    refused: HashSet<String>,
    /// How many keys are usable.
    len: usize,
}

/// What a token's key lookup found.
pub(crate) enum Lookup<'a> {
    /// The key that verifies the token's algorithm.
    Found(&'a Key),
    /// The set has no key of this id: a refresh may bring it.
    UnknownKid,
    /// Refused: the key is unusable or does not fit the token's algorithm, or the token
    /// names no key and the set does not have exactly one.
    Refused(&'static str),
}

impl KeySet {
    /// How many keys are usable.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The `kid`s of the usable keys, sorted.
    pub(crate) fn key_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.by_kid.keys().cloned().collect();
        ids.sort();
        ids
    }

    /// The key for a token of algorithm `alg` naming `kid`.
    pub(crate) fn lookup(&self, kid: Option<&str>, alg: Algorithm) -> Lookup<'_> {
        let Some(kid) = kid else {
            // RFC 7515 §4.1.4: without a `kid`, only an unambiguous set will do.
            let only = match (self.len, self.unnamed.first()) {
                (1, Some(key)) => Some(key),
                (1, None) => self.by_kid.values().flatten().next(),
                _ => None,
            };
            return match only {
                Some(key) if key.algs.contains(alg) => Lookup::Found(key),
                Some(_) => Lookup::Refused("the key does not verify the token's alg"),
                None => Lookup::Refused("no kid, and the key set has more than one key"),
            };
        };
        match self.by_kid.get(kid) {
            Some(keys) => match keys.iter().find(|k| k.algs.contains(alg)) {
                Some(key) => Lookup::Found(key),
                None => Lookup::Refused("the key does not verify the token's alg"),
            },
            None if self.refused.contains(kid) => Lookup::Refused("the key was refused"),
            None => Lookup::UnknownKid,
        }
    }
}

/// Why a key of a set was not read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Note {
    /// A refusal every set of some provider has (Keycloak publishes an encryption key):
    /// worth a debug line, not a warning on every refresh.
    pub(crate) expected: bool,
    pub(crate) text: String,
}

/// Refusals of keys that are simply not for us.
const EXPECTED: [&str; 4] = [
    USE_NOT_SIG,
    OPS_NOT_VERIFY,
    UNSUPPORTED_ALG,
    ALG_NOT_ALLOWED,
];
const USE_NOT_SIG: &str = "its use is not \"sig\"";
const OPS_NOT_VERIFY: &str = "its key_ops do not include \"verify\"";
const UNSUPPORTED_ALG: &str = "an unsupported alg";
const ALG_NOT_ALLOWED: &str = "its algorithm is not allowed by the configuration";

/// Why a JWK set as a whole is not usable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SetProblem {
    /// Not a JSON object with a `keys` array.
    Malformed(&'static str),
    /// Not one key is usable; why each was refused.
    NoUsableKeys(Vec<String>),
}

/// Reads a JWK set, keeping the keys usable for the `allowed` algorithms. Returns the set
/// and a note per refused key (logged by the caller; no key material in them).
pub(crate) fn parse_jwks(body: &[u8], allowed: AlgSet) -> Result<(KeySet, Vec<Note>), SetProblem> {
    let doc: Value = serde_json::from_slice(body).map_err(|_| SetProblem::Malformed("not JSON"))?;
    let keys = doc
        .get("keys")
        .and_then(Value::as_array)
        .ok_or(SetProblem::Malformed("no \"keys\" array"))?;
    let mut set = KeySet::default();
    let mut notes = Vec::new();
    if keys.len() > MAX_KEYS {
        notes.push(Note {
            expected: false,
            text: format!(
                "the set has {} keys; only the first {MAX_KEYS} are read",
                keys.len()
            ),
        });
    }
    for (i, jwk) in keys.iter().take(MAX_KEYS).enumerate() {
        let kid = jwk.get("kid").and_then(Value::as_str);
        match parse_key(jwk, allowed) {
            Ok(key) => {
                set.len += 1;
                match kid {
                    Some(kid) => set.by_kid.entry(kid.to_owned()).or_default().push(key),
                    None => set.unnamed.push(key),
                }
            }
            Err(why) => {
                notes.push(Note {
                    expected: EXPECTED.contains(&why),
                    text: match kid {
                        Some(kid) => format!("key {kid:?} refused: {why}"),
                        None => format!("key #{i} refused: {why}"),
                    },
                });
                if let Some(kid) = kid {
                    set.refused.insert(kid.to_owned());
                }
            }
        }
    }
    // A kid that names a usable key is not "refused", whatever else shares it.
    set.refused.retain(|kid| !set.by_kid.contains_key(kid));
    if set.len == 0 {
        return Err(SetProblem::NoUsableKeys(
            notes.into_iter().map(|n| n.text).collect(),
        ));
    }
    Ok((set, notes))
}

fn parse_key(jwk: &Value, allowed: AlgSet) -> Result<Key, &'static str> {
    let text = |name: &str| jwk.get(name).and_then(Value::as_str);
    if jwk.get("use").is_some_and(|u| u.as_str() != Some("sig")) {
        return Err(USE_NOT_SIG);
    }
    if let Some(ops) = jwk.get("key_ops") {
        let verify = ops
            .as_array()
            .is_some_and(|ops| ops.iter().any(|o| o.as_str() == Some("verify")));
        if !verify {
            return Err(OPS_NOT_VERIFY);
        }
    }
    let (by_type, decoding) = match text("kty") {
        Some("oct") => return Err("a symmetric (HMAC) key is never accepted from a JWK set"),
        Some("RSA") => {
            let (n, e) = text("n").zip(text("e")).ok_or("an RSA key needs n and e")?;
            if rsa_bits(n).ok_or("n is not base64url")? < MIN_RSA_BITS {
                return Err("an RSA key shorter than 2048 bits");
            }
            let key = DecodingKey::from_rsa_components(n, e).map_err(|_| "malformed RSA key")?;
            (AlgSet(0b0011), key)
        }
        Some("EC") => {
            if text("crv") != Some("P-256") {
                return Err("an EC key on a curve other than P-256");
            }
            let (x, y) = text("x").zip(text("y")).ok_or("an EC key needs x and y")?;
            if b64_len(x) != Some(32) || b64_len(y) != Some(32) {
                return Err("malformed P-256 coordinates");
            }
            let key = DecodingKey::from_ec_components(x, y).map_err(|_| "malformed EC key")?;
            (AlgSet(0b0100), key)
        }
        Some("OKP") => {
            if text("crv") != Some("Ed25519") {
                return Err("an OKP key on a curve other than Ed25519");
            }
            let x = text("x").ok_or("an OKP key needs x")?;
            if b64_len(x) != Some(32) {
                return Err("malformed Ed25519 key");
            }
            let key = DecodingKey::from_ed_components(x).map_err(|_| "malformed Ed25519 key")?;
            (AlgSet(0b1000), key)
        }
        Some(_) => return Err("an unsupported key type"),
        None => return Err("no kty"),
    };
    let algs = match jwk.get("alg") {
        None => by_type,
        Some(alg) => {
            let alg = alg
                .as_str()
                .and_then(|a| a.parse::<Algorithm>().ok())
                .and_then(AlgSet::of)
                .ok_or(UNSUPPORTED_ALG)?;
            if alg.intersection(by_type).is_empty() {
                return Err("its alg does not fit its key type");
            }
            alg
        }
    };
    let algs = algs.intersection(allowed);
    if algs.is_empty() {
        return Err(ALG_NOT_ALLOWED);
    }
    Ok(Key { algs, decoding })
}

fn b64_decode(text: &str) -> Option<Vec<u8>> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text.trim_end_matches('='))
        .ok()
}

fn b64_len(text: &str) -> Option<usize> {
    b64_decode(text).map(|b| b.len())
}

/// The bit length of a base64url big-endian modulus.
fn rsa_bits(n: &str) -> Option<usize> {
    let bytes = b64_decode(n)?;
    let Some(first) = bytes.iter().position(|b| *b != 0) else {
        return Some(0);
    };
    Some((bytes.len() - first) * 8 - bytes[first].leading_zeros() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
    }

    fn rsa(kid: &str, bits: usize) -> Value {
        let mut n = vec![0xC5u8; bits / 8];
        n[0] |= 0x80;
        json!({"kty": "RSA", "kid": kid, "n": b64(&n), "e": "AQAB"})
    }

    fn parse(keys: Value) -> Result<(KeySet, Vec<Note>), SetProblem> {
        parse_jwks(json!({ "keys": keys }).to_string().as_bytes(), AlgSet::ALL)
    }

    fn found(set: &KeySet, kid: Option<&str>, alg: Algorithm) -> bool {
        matches!(set.lookup(kid, alg), Lookup::Found(_))
    }

    #[test]
    fn keys_by_type_use_and_alg() {
        let mut sig = rsa("sig", 2048);
        sig["use"] = json!("sig");
        let mut enc = rsa("enc", 2048);
        enc["use"] = json!("enc");
        let mut pinned = rsa("pinned", 2048);
        pinned["alg"] = json!("PS256");
        let mut ops = rsa("ops", 2048);
        ops["key_ops"] = json!(["encrypt"]);
        let ec = json!({"kty": "EC", "kid": "ec", "crv": "P-256", "x": b64(&[1; 32]), "y": b64(&[2; 32])});
        let p384 = json!({"kty": "EC", "kid": "p384", "crv": "P-384", "x": b64(&[1; 48]), "y": b64(&[2; 48])});
        let ed = json!({"kty": "OKP", "kid": "ed", "crv": "Ed25519", "x": b64(&[3; 32])});
        let hmac = json!({"kty": "oct", "kid": "hmac", "k": b64(&[4; 32]), "alg": "HS256"});
        let short = rsa("short", 1024);
        let mut wrong_alg = rsa("wrong-alg", 2048);
        wrong_alg["alg"] = json!("ES256");
        let mut rs384 = rsa("rs384", 2048);
        rs384["alg"] = json!("RS384");
        let (set, notes) = parse(json!([
            sig, enc, pinned, ops, ec, p384, ed, hmac, short, wrong_alg, rs384
        ]))
        .unwrap();
        assert_eq!(set.key_ids(), ["ec", "ed", "pinned", "sig"]);
        assert_eq!(notes.len(), 7, "{notes:?}");
        assert!(
            notes
                .iter()
                .any(|n| !n.expected && n.text.contains("\"hmac\"") && n.text.contains("HMAC"))
        );
        // An encryption key is no news (Keycloak publishes one); a short RSA key is.
        let expected = |kid: &str| {
            notes
                .iter()
                .find(|n| n.text.contains(kid))
                .unwrap()
                .expected
        };
        assert!(expected("\"enc\""));
        assert!(expected("\"rs384\""));
        assert!(!expected("\"short\""));
        assert!(!expected("\"p384\""));
        // Key type decides the algorithm family; a key's own alg pins it.
        assert!(found(&set, Some("sig"), Algorithm::RS256));
        assert!(found(&set, Some("sig"), Algorithm::PS256));
        assert!(!found(&set, Some("sig"), Algorithm::ES256));
        assert!(found(&set, Some("pinned"), Algorithm::PS256));
        assert!(!found(&set, Some("pinned"), Algorithm::RS256));
        assert!(found(&set, Some("ec"), Algorithm::ES256));
        assert!(!found(&set, Some("ec"), Algorithm::RS256));
        assert!(found(&set, Some("ed"), Algorithm::EdDSA));
        assert!(!found(&set, Some("ed"), Algorithm::ES256));
        // Refused keys are not "unknown": no refresh is asked for them.
        assert!(matches!(
            set.lookup(Some("hmac"), Algorithm::HS256),
            Lookup::Refused(_)
        ));
        assert!(matches!(
            set.lookup(Some("enc"), Algorithm::RS256),
            Lookup::Refused(_)
        ));
        assert!(matches!(
            set.lookup(Some("new"), Algorithm::RS256),
            Lookup::UnknownKid
        ));
        // No kid with several keys: refused.
        assert!(matches!(
            set.lookup(None, Algorithm::RS256),
            Lookup::Refused(_)
        ));
    }

    #[test]
    fn the_configuration_narrows_the_algorithms() {
        let body = json!({"keys": [rsa("a", 2048)]}).to_string();
        let (set, _) = parse_jwks(body.as_bytes(), AlgSet::of(Algorithm::PS256).unwrap()).unwrap();
        assert!(!found(&set, Some("a"), Algorithm::RS256));
        assert!(found(&set, Some("a"), Algorithm::PS256));
        let only_ec = AlgSet::of(Algorithm::ES256).unwrap();
        assert!(matches!(
            parse_jwks(body.as_bytes(), only_ec),
            Err(SetProblem::NoUsableKeys(_))
        ));
    }

    #[test]
    fn a_single_key_serves_tokens_without_kid() {
        let mut key = rsa("x", 2048);
        key.as_object_mut().unwrap().remove("kid");
        let (set, _) = parse(json!([key])).unwrap();
        assert!(found(&set, None, Algorithm::RS256));
        assert!(!found(&set, None, Algorithm::ES256));
        let (set, _) = parse(json!([rsa("only", 2048)])).unwrap();
        assert!(found(&set, None, Algorithm::RS256));
        assert!(matches!(
            set.lookup(Some("other"), Algorithm::RS256),
            Lookup::UnknownKid
        ));
    }

    #[test]
    fn malformed_sets() {
        for body in [&b"not json"[..], b"[]", b"{}", b"{\"keys\": 1}"] {
            assert!(
                matches!(parse_jwks(body, AlgSet::ALL), Err(SetProblem::Malformed(_))),
                "{body:?}"
            );
        }
        assert!(matches!(parse(json!([])), Err(SetProblem::NoUsableKeys(_))));
        let hmac_only = json!([{"kty": "oct", "kid": "h", "k": b64(&[1; 32])}]);
        assert!(matches!(parse(hmac_only), Err(SetProblem::NoUsableKeys(n)) if n.len() == 1));
        let many: Vec<Value> = (0..MAX_KEYS + 5)
            .map(|i| rsa(&i.to_string(), 2048))
            .collect();
        let (set, notes) = parse(Value::Array(many)).unwrap();
        assert_eq!(set.len(), MAX_KEYS);
        assert_eq!(notes.len(), 1);
    }

    #[test]
    fn rsa_modulus_length() {
        assert_eq!(rsa_bits(&b64(&[0, 0, 0x01, 0xFF])), Some(9));
        assert_eq!(rsa_bits(&b64(&[0x80; 256])), Some(2048));
        assert_eq!(rsa_bits(&b64(&[0x7F; 256])), Some(2047));
        assert_eq!(rsa_bits("!!"), None);
    }
}
