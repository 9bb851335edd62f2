//! A local identity provider for the OIDC tests and the benchmark: an actix server on
//! 127.0.0.1, in a thread (and actix system) of its own, serving an OpenID Connect discovery
//! document and a JWK set that the test controls, counting what it serves, and misbehaving
//! on demand (down, garbage, oversized, slow). Tokens are signed with the test-only keys of
//! `tests/keys`.
#![allow(dead_code)]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix_web::{App, HttpResponse, HttpServer, web};
use base64::Engine;
use jsonwebtoken::jwk::Jwk;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

pub const RSA_PRIVATE: &[u8] = include_bytes!("../keys/rsa_private.pem");
pub const RSA2_PRIVATE: &[u8] = include_bytes!("../keys/rsa2_private.pem");
pub const EC_PRIVATE: &[u8] = include_bytes!("../keys/ec_private.pem");
pub const ED_PRIVATE: &[u8] = include_bytes!("../keys/ed_private.pem");
pub const ED_PUBLIC: &[u8] = include_bytes!("../keys/ed_public.pem");

/// How the provider answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The document.
    Normal,
    /// 503.
    Down,
    /// 200 with a body that is not JSON.
    Garbage,
    /// 200 with a JSON body of this many bytes.
    Oversized(usize),
    /// The document after this long.
    Slow(Duration),
}

struct State {
    issuer: String,
    /// The `issuer` the discovery document names (the real one by default).
    doc_issuer: Mutex<Option<String>>,
    keys: Mutex<Vec<Value>>,
    discovery_mode: Mutex<Mode>,
    jwks_mode: Mutex<Mode>,
    cache_control: Mutex<Option<String>>,
    /// The next this-many requests (of either kind) answer 503.
    fail_next: AtomicUsize,
    discovery_fetches: AtomicUsize,
    jwks_fetches: AtomicUsize,
}

/// A running provider; stopped when dropped.
pub struct Idp {
    /// `http://127.0.0.1:<port>/realms/test`.
    pub issuer: String,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    state: Arc<State>,
    handle: actix_web::dev::ServerHandle,
    thread: Option<std::thread::JoinHandle<()>>,
}

const REALM: &str = "/realms/test";

async fn answer(mode: Mode, body: String, state: &State) -> HttpResponse {
    if state
        .fail_next
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
        .is_ok()
    {
        return HttpResponse::ServiceUnavailable().body("down");
    }
    let mut ok = HttpResponse::Ok();
    ok.content_type("application/json");
    if let Some(cc) = state.cache_control.lock().unwrap().clone() {
        ok.insert_header(("cache-control", cc));
    }
    match mode {
        Mode::Normal => ok.body(body),
        Mode::Down => HttpResponse::ServiceUnavailable().body("down"),
        Mode::Garbage => ok.body("<html>Gateway says hello</html>"),
        Mode::Oversized(n) => {
            let pad = "x".repeat(n.saturating_sub(20));
            ok.body(format!("{{\"keys\":[],\"pad\":\"{pad}\"}}"))
        }
        Mode::Slow(d) => {
            actix_web::rt::time::sleep(d).await;
            ok.body(body)
        }
    }
}

async fn discovery(state: web::Data<State>) -> HttpResponse {
    state.discovery_fetches.fetch_add(1, Ordering::SeqCst);
    let issuer = state
        .doc_issuer
        .lock()
        .unwrap()
        .clone()
        .unwrap_or_else(|| state.issuer.clone());
    let doc = json!({
        "issuer": issuer,
        "jwks_uri": format!("{}/protocol/openid-connect/certs", state.issuer),
        "id_token_signing_alg_values_supported": ["RS256"],
    });
    let mode = *state.discovery_mode.lock().unwrap();
    answer(mode, doc.to_string(), &state).await
}

async fn jwks(state: web::Data<State>) -> HttpResponse {
    state.jwks_fetches.fetch_add(1, Ordering::SeqCst);
    let body = json!({ "keys": *state.keys.lock().unwrap() }).to_string();
    let mode = *state.jwks_mode.lock().unwrap();
    answer(mode, body, &state).await
}

impl Idp {
    /// A provider serving `keys` (JWKs).
    pub fn start(keys: Vec<Value>) -> Idp {
        let (tx, rx) = std::sync::mpsc::channel();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let issuer = format!("{base}{REALM}");
        let state = Arc::new(State {
            issuer: issuer.clone(),
            doc_issuer: Mutex::new(None),
            keys: Mutex::new(keys),
            discovery_mode: Mutex::new(Mode::Normal),
            jwks_mode: Mutex::new(Mode::Normal),
            cache_control: Mutex::new(None),
            fail_next: AtomicUsize::new(0),
            discovery_fetches: AtomicUsize::new(0),
            jwks_fetches: AtomicUsize::new(0),
        });
        let data = web::Data::from(state.clone());
        let thread = std::thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    App::new()
                        .app_data(data.clone())
                        .route(
                            &format!("{REALM}/.well-known/openid-configuration"),
                            web::get().to(discovery),
                        )
                        .route(
                            &format!("{REALM}/protocol/openid-connect/certs"),
                            web::get().to(jwks),
                        )
                })
                .workers(1)
                .disable_signals()
                .shutdown_timeout(0)
                .listen(listener)
                .unwrap()
                .run();
                tx.send(server.handle()).unwrap();
                let _ = server.await;
            })
        });
        let handle = rx.recv().unwrap();
        Idp {
            issuer,
            base,
            state,
            handle,
            thread: Some(thread),
        }
    }

    /// The JWK set's URL.
    pub fn jwks_url(&self) -> String {
        format!("{}/protocol/openid-connect/certs", self.issuer)
    }

    pub fn set_keys(&self, keys: Vec<Value>) {
        *self.state.keys.lock().unwrap() = keys;
    }

    pub fn set_jwks_mode(&self, mode: Mode) {
        *self.state.jwks_mode.lock().unwrap() = mode;
    }

    pub fn set_discovery_mode(&self, mode: Mode) {
        *self.state.discovery_mode.lock().unwrap() = mode;
    }

    /// The `issuer` the discovery document names.
    pub fn set_document_issuer(&self, issuer: &str) {
        *self.state.doc_issuer.lock().unwrap() = Some(issuer.to_owned());
    }

    pub fn set_cache_control(&self, value: Option<&str>) {
        *self.state.cache_control.lock().unwrap() = value.map(str::to_owned);
    }

    /// The next `n` requests answer 503.
    pub fn fail_next(&self, n: usize) {
        self.state.fail_next.store(n, Ordering::SeqCst);
    }

    /// Discovery documents served (or refused) so far.
    pub fn discovery_fetches(&self) -> usize {
        self.state.discovery_fetches.load(Ordering::SeqCst)
    }

    /// JWK sets served (or refused) so far.
    pub fn jwks_fetches(&self) -> usize {
        self.state.jwks_fetches.load(Ordering::SeqCst)
    }

    /// Every request of either kind so far.
    pub fn fetches(&self) -> usize {
        self.discovery_fetches() + self.jwks_fetches()
    }
}

impl Drop for Idp {
    fn drop(&mut self) {
        // `stop` sends the command at once; the returned future only waits for it.
        drop(self.handle.stop(false));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// A signing key of the provider and its JWK.
#[derive(Clone)]
pub struct Signer {
    pub kid: String,
    pub alg: Algorithm,
    key: EncodingKey,
    /// The public JWK the provider publishes (`kid`, `use: sig`, `alg`).
    pub jwk: Value,
}

impl Signer {
    fn new(kid: &str, alg: Algorithm, key: EncodingKey, mut jwk: Value) -> Signer {
        jwk["kid"] = json!(kid);
        jwk["use"] = json!("sig");
        jwk["alg"] = json!(format!("{alg:?}"));
        Signer {
            kid: kid.to_owned(),
            alg,
            key,
            jwk,
        }
    }

    /// An RSA key (`pem`: a private key of `tests/keys`) for RS256 or PS256.
    pub fn rsa(kid: &str, alg: Algorithm, pem: &[u8]) -> Signer {
        let key = EncodingKey::from_rsa_pem(pem).unwrap();
        let jwk = serde_json::to_value(Jwk::from_encoding_key(&key, alg).unwrap()).unwrap();
        Signer::new(kid, alg, key, jwk)
    }

    /// The P-256 key, ES256.
    pub fn ec(kid: &str) -> Signer {
        let key = EncodingKey::from_ec_pem(EC_PRIVATE).unwrap();
        let jwk =
            serde_json::to_value(Jwk::from_encoding_key(&key, Algorithm::ES256).unwrap()).unwrap();
        Signer::new(kid, Algorithm::ES256, key, jwk)
    }

    /// The Ed25519 key, EdDSA.
    pub fn ed(kid: &str) -> Signer {
        let key = EncodingKey::from_ed_pem(ED_PRIVATE).unwrap();
        // The SubjectPublicKeyInfo's last 32 bytes are the public key.
        let der: String = std::str::from_utf8(ED_PUBLIC)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        let der = base64::engine::general_purpose::STANDARD
            .decode(der)
            .unwrap();
        let x = &der[der.len() - 32..];
        let jwk = json!({"kty": "OKP", "crv": "Ed25519", "x": b64(x)});
        Signer::new(kid, Algorithm::EdDSA, key, jwk)
    }

    /// The JWK without its `alg` (as Entra ID publishes keys).
    pub fn jwk_without_alg(&self) -> Value {
        let mut jwk = self.jwk.clone();
        jwk.as_object_mut().unwrap().remove("alg");
        jwk
    }

    /// A token of `claims`, `typ: at+jwt`, naming this key.
    pub fn sign(&self, claims: &Value) -> String {
        self.sign_with(self.alg, Some(&self.kid), Some("at+jwt"), claims)
    }

    /// A token with the header given: `alg`, `kid` and `typ` as the test wants them.
    pub fn sign_with(
        &self,
        alg: Algorithm,
        kid: Option<&str>,
        typ: Option<&str>,
        claims: &Value,
    ) -> String {
        let mut header = Header::new(alg);
        header.kid = kid.map(str::to_owned);
        header.typ = typ.map(str::to_owned);
        jsonwebtoken::encode(&header, claims, &self.key).unwrap()
    }
}
