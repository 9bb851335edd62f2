//! Access-token verification against a fixed HS256 key and a fixed clock.
//!
//! Two inputs: arbitrary token bytes, which must all be refused (nothing here can forge the
//! signature); and an arbitrary JOSE header and claims set, signed with the real key, so
//! that every claim check is reached. A token that passes must carry what `verify` promises:
//! `alg` HS256, the access-token `typ`, the configured `iss` and `aud`, a non-empty `sub`,
//! and times within the leeway and the 15-minute cap.
#![no_main]

use std::sync::Arc;
use std::sync::LazyLock;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use libfuzzer_sys::fuzz_target;
use secure_api_runtime::auth::jwt::JwtAuth;
use secure_api_runtime::clock::FakeClock;
use serde::Deserialize;
use serde_json::Value;
use sha2::Sha256;

const KEY: &[u8] = b"fuzz-key-0123456789abcdef0123456789abcdef";
const ISSUER: &str = "https://issuer.example";
const AUDIENCE: &str = "fuzz-api";
const NOW: u64 = 1_800_000_000;
const LEEWAY: u64 = 30;

static AUTH: LazyLock<JwtAuth> = LazyLock::new(|| {
    let clock = FakeClock::new();
    clock.set(NOW * 1_000_000_000);
    JwtAuth::hs256(KEY.to_vec())
        .issuer(ISSUER)
        .audience(AUDIENCE)
        .leeway(Duration::from_secs(LEEWAY))
        .clock(Arc::new(clock))
        .build()
        .expect("a valid configuration")
});

fn sign(header: &[u8], claims: &[u8]) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let mut mac = Hmac::<Sha256>::new_from_slice(KEY).expect("any key length");
    mac.update(input.as_bytes());
    let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    format!("{input}.{signature}")
}

/// The JOSE header as the oracle reads it. Typed, as the verifier reads it: serde skips
/// unknown members without checking their strings, so a `Value` would refuse headers and
/// claims that both parsers accept (invalid UTF-8 inside an unknown member).
#[derive(Deserialize)]
struct SeenHeader {
    alg: String,
    typ: Option<String>,
}

/// The claims the oracle checks.
#[derive(Deserialize)]
struct SeenClaims {
    iss: Value,
    aud: Value,
    sub: String,
    exp: u64,
    iat: u64,
    nbf: Option<u64>,
}

/// What a token that passed must say.
fn assert_acceptable(header: &[u8], claims: &[u8], subject: &str) {
    let header: SeenHeader = serde_json::from_slice(header).expect("an accepted header parses");
    assert_eq!(header.alg, "HS256", "accepted another algorithm");
    let typ = header.typ.expect("accepted without a typ");
    assert!(
        typ.eq_ignore_ascii_case("at+jwt") || typ.eq_ignore_ascii_case("application/at+jwt"),
        "accepted typ {typ:?}"
    );
    let claims: SeenClaims = serde_json::from_slice(claims).expect("accepted claims parse");
    assert_eq!(claims.iss, ISSUER, "accepted another issuer");
    let aud_ok = match &claims.aud {
        Value::String(aud) => aud == AUDIENCE,
        Value::Array(auds) => auds.iter().any(|a| a == AUDIENCE),
        _ => false,
    };
    assert!(aud_ok, "accepted another audience");
    assert_eq!(claims.sub, subject);
    assert!(!subject.is_empty(), "accepted an empty subject");
    assert!(NOW <= claims.exp + LEEWAY, "accepted an expired token");
    assert!(
        claims.iat <= NOW + LEEWAY,
        "accepted a token from the future"
    );
    assert!(
        claims.exp.saturating_sub(claims.iat) <= 15 * 60,
        "accepted a long-lived token"
    );
    assert!(
        claims.nbf.is_none_or(|nbf| nbf <= NOW + LEEWAY),
        "accepted a token not yet valid"
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode & 1 == 0 {
        let token = String::from_utf8_lossy(rest);
        assert!(AUTH.verify_claims(&token).is_err(), "a forged token passed");
        return;
    }
    let (header, claims) = match rest.iter().position(|&b| b == 0) {
        Some(at) => (&rest[..at], &rest[at + 1..]),
        None => (rest, &b"{}"[..]),
    };
    let token = sign(header, claims);
    if let Ok(principal) = AUTH.verify_claims(&token) {
        assert_acceptable(header, claims, &principal.subject);
    }
});
