//! Verifying an access token with an identity provider's cached JWK set (`JwtAuth::oidc`)
//! against the fixed-key path (`JwtAuth::rs256_pem`), with the same RSA key and the same
//! token claims.
//!
//! ```text
//! CARGO_TARGET_DIR=target-bench cargo bench --bench oidc -- \
//!     --warm-up-time 1 --measurement-time 3
//! ```
//!
//! The provider is the tests' local one (`tests/common/idp.rs`: an actix server on
//! 127.0.0.1, in a thread of its own); it is asked once, at start-up, and never while
//! timing (`main` checks the fetch count after the runs). Cases, for RS256 and ES256 each:
//! - `fixed/verify_claims` and `provider/verify_claims`: signature and claims checks;
//! - `fixed/verify` and `provider/verify`: the same plus the in-memory revocation store,
//!   what the endpoint runtime calls on every request (driven with `now_or_never`: every
//!   future here is ready at once);
//! - `provider/unknown_kid`: a token naming a key the set does not have, inside the
//!   cool-down (refused at once, without a fetch; the cool-down is set to a day so that
//!   none falls due while timing).
//!
//! Each side's token is a real token of that side: `typ: at+jwt`, `iss`, `aud`, `sub`,
//! `iat`, `nbf`, `exp` and `jti`; the provider's also carries a `kid`, a `scope` and
//! Keycloak-style realm roles, read by a configured roles claim, as a provider's would.

#[path = "../tests/common/idp.rs"]
mod idp;

use std::hint::black_box;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::Criterion;
use futures_util::FutureExt;
use idp::{Idp, RSA_PRIVATE, Signer};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use secure_api_runtime::auth::jwt::JwtAuth;
use serde_json::json;

const RSA_PUBLIC: &[u8] = include_bytes!("../tests/keys/rsa_public.pem");
const EC_PUBLIC: &[u8] = include_bytes!("../tests/keys/ec_public.pem");
const AUDIENCE: &str = "bench-api";

fn main() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let rsa = Signer::rsa("rsa-1", Algorithm::RS256, RSA_PRIVATE);
    let ec = Signer::ec("ec-1");
    let idp = Idp::start(vec![rsa.jwk.clone(), ec.jwk.clone()]);
    let rt = actix_web::rt::System::new();
    let provider = rt
        .block_on(
            JwtAuth::oidc(&idp.issuer)
                .audience(AUDIENCE)
                .roles_claim("/realm_access/roles")
                // Nothing is refetched while timing, however long the run.
                .unknown_kid_cooldown(Duration::from_secs(24 * 3600))
                .refresh_interval(Duration::from_secs(24 * 3600))
                .build(),
        )
        .expect("the local provider answers");
    let fetched = idp.fetches();

    let claims = |iss: &str| {
        json!({
            "iss": iss, "aud": AUDIENCE, "sub": "alice", "iat": now, "nbf": now,
            "exp": now + 600, "jti": "0123456789abcdef",
            "scope": "openid read:users", "realm_access": {"roles": ["user"]},
        })
    };
    let fixed_token = |alg: Algorithm, key: &EncodingKey| {
        let mut header = Header::new(alg);
        header.typ = Some("at+jwt".to_owned());
        jsonwebtoken::encode(&header, &claims("https://issuer.bench"), key).unwrap()
    };
    let fixed = |builder: secure_api_runtime::auth::jwt::JwtAuthBuilder| {
        builder
            .issuer("https://issuer.bench")
            .audience(AUDIENCE)
            .build()
            .unwrap()
    };
    let cases = [
        (
            "rs256",
            fixed(JwtAuth::rs256_pem(RSA_PUBLIC.to_vec())),
            fixed_token(
                Algorithm::RS256,
                &EncodingKey::from_rsa_pem(RSA_PRIVATE).unwrap(),
            ),
            rsa.sign(&claims(&idp.issuer)),
        ),
        (
            "es256",
            fixed(JwtAuth::es256_pem(EC_PUBLIC.to_vec())),
            fixed_token(
                Algorithm::ES256,
                &EncodingKey::from_ec_pem(idp::EC_PRIVATE).unwrap(),
            ),
            ec.sign(&claims(&idp.issuer)),
        ),
    ];
    // Both sides accept their tokens, and see the same subject.
    for (name, jwt, fixed_token, provider_token) in &cases {
        let a = jwt.verify(fixed_token).now_or_never().unwrap();
        let b = provider.verify(provider_token).now_or_never().unwrap();
        assert_eq!(a.unwrap().subject, "alice", "{name}");
        assert_eq!(b.unwrap().roles, ["user"], "{name}");
    }
    let unknown = rsa.sign_with(
        Algorithm::RS256,
        Some("rsa-2"),
        Some("at+jwt"),
        &claims(&idp.issuer),
    );
    assert!(provider.verify(&unknown).now_or_never().unwrap().is_err());

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    for (name, jwt, fixed_token, provider_token) in &cases {
        let mut g = c.benchmark_group(format!("oidc/{name}"));
        g.bench_function("fixed/verify_claims", |b| {
            b.iter(|| black_box(jwt.verify_claims(black_box(fixed_token))))
        });
        g.bench_function("provider/verify_claims", |b| {
            b.iter(|| black_box(provider.verify_claims(black_box(provider_token))))
        });
        g.bench_function("fixed/verify", |b| {
            b.iter(|| black_box(jwt.verify(black_box(fixed_token)).now_or_never()))
        });
        g.bench_function("provider/verify", |b| {
            b.iter(|| black_box(provider.verify(black_box(provider_token)).now_or_never()))
        });
        g.finish();
    }
    c.bench_function("oidc/provider/unknown_kid", |b| {
        b.iter(|| black_box(provider.verify(black_box(&unknown)).now_or_never()))
    });
    c.final_summary();
    assert_eq!(
        idp.fetches(),
        fetched,
        "the cached key set was used: nothing fetched while timing"
    );
}
