//! An identity provider over HTTPS, with the certificate of a private CA
//! (`tests/keys/tls/`): a discovery document and a JWK set, served by a blocking
//! rustls server on a thread of its own, one request per connection.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde_json::{Value, json};

/// The private root CA that issued the server's certificate.
pub const CA_PEM: &[u8] = include_bytes!("../keys/tls/ca.pem");
/// Another private root CA, which issued nothing the server presents.
pub const OTHER_CA_PEM: &[u8] = include_bytes!("../keys/tls/other-ca.pem");
/// The server's certificate (`localhost`, `127.0.0.1`), issued by [`CA_PEM`].
pub const SERVER_PEM: &[u8] = include_bytes!("../keys/tls/server.pem");
/// The server's private key (test only).
pub const SERVER_KEY: &[u8] = include_bytes!("../keys/tls/server.key");

/// A running HTTPS provider; stopped when dropped.
pub struct HttpsIdp {
    /// `https://127.0.0.1:<port>/realms/test`.
    pub issuer: String,
    /// Requests answered (handshakes that failed are not requests).
    pub requests: Arc<AtomicUsize>,
    /// Handshakes that failed.
    pub failed_handshakes: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    addr: std::net::SocketAddr,
    thread: Option<JoinHandle<()>>,
}

impl HttpsIdp {
    /// A provider serving `keys` (JWKs).
    pub fn start(keys: Vec<Value>) -> HttpsIdp {
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(SERVER_PEM)
            .collect::<Result<_, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_slice(SERVER_KEY).unwrap();
        let config = Arc::new(
            rustls::ServerConfig::builder_with_provider(Arc::new(
                rustls::crypto::ring::default_provider(),
            ))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .unwrap(),
        );
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let issuer = format!("https://{addr}/realms/test");
        let discovery = json!({
            "issuer": issuer,
            "jwks_uri": format!("{issuer}/protocol/openid-connect/certs"),
            "id_token_signing_alg_values_supported": ["RS256"],
        })
        .to_string();
        let jwks = json!({ "keys": keys }).to_string();
        let requests = Arc::new(AtomicUsize::new(0));
        let failed_handshakes = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (requests, failed, stop) =
                (requests.clone(), failed_handshakes.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        return;
                    }
                    let Ok(stream) = stream else { continue };
                    match serve(stream, config.clone(), &discovery, &jwks) {
                        Ok(()) => requests.fetch_add(1, Ordering::SeqCst),
                        Err(_) => failed.fetch_add(1, Ordering::SeqCst),
                    };
                }
            })
        };
        HttpsIdp {
            issuer,
            requests,
            failed_handshakes,
            stop,
            addr,
            thread: Some(thread),
        }
    }
}

/// One connection: the handshake, one GET, its answer.
fn serve(
    tcp: TcpStream,
    config: Arc<rustls::ServerConfig>,
    discovery: &str,
    jwks: &str,
) -> std::io::Result<()> {
    tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
    let conn = rustls::ServerConnection::new(config).map_err(std::io::Error::other)?;
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    let mut head = Vec::new();
    let mut buf = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = tls.read(&mut buf)?;
        if n == 0 || head.len() > 16 * 1024 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        head.extend_from_slice(&buf[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let path = line.split_whitespace().nth(1).unwrap_or("");
    let (status, body) = if path.ends_with("/.well-known/openid-configuration") {
        ("200 OK", discovery)
    } else if path.ends_with("/protocol/openid-connect/certs") {
        ("200 OK", jwks)
    } else {
        ("404 Not Found", "{}")
    };
    write!(
        tls,
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )?;
    tls.flush()?;
    tls.conn.send_close_notify();
    tls.flush()
}

impl Drop for HttpsIdp {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the accept loop.
        let _ = TcpStream::connect(self.addr);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
