//! Fetching the discovery document and the JWK set: which URLs are allowed, one HTTP GET
//! with a deadline and a size cap, and the `Cache-Control: max-age` of the answer.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use ureq::tls::{Certificate, PemItem};
use url::{Host, Url};

/// Why a fetch from the identity provider failed. Operator-facing (start-up errors, logs);
/// never sent to a client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FetchError {
    /// No complete answer within the fetch timeout (connecting, sending, waiting for the
    /// headers and reading the body, all counted).
    Timeout,
    /// The body is larger than the configured cap, in bytes.
    TooLarge {
        /// The cap.
        limit: usize,
    },
    /// An answer other than `200 OK`.
    Status(u16),
    /// The body is not the expected JSON document; the reason is ours, never the body.
    Malformed(&'static str),
    /// Connecting, TLS or HTTP failed.
    Transport(String),
}

impl fmt::Display for FetchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FetchError::Timeout => f.write_str("no complete answer within the fetch timeout"),
            FetchError::TooLarge { limit } => {
                write!(f, "the answer is larger than the {limit}-byte cap")
            }
            FetchError::Status(status) => write!(f, "the answer has status {status}, not 200"),
            FetchError::Malformed(why) => write!(f, "the answer is not valid: {why}"),
            FetchError::Transport(why) => write!(f, "the request failed: {why}"),
        }
    }
}

impl std::error::Error for FetchError {}

/// Why a URL of the provider is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UrlProblem {
    /// Not a URL.
    Unparsable,
    /// Neither `https` nor `http` on a loopback host.
    NotHttps,
    /// User name or password in the URL.
    Credentials,
    /// A query or a fragment, which an issuer must not have (OpenID Connect Discovery §2).
    QueryOrFragment,
}

impl fmt::Display for UrlProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UrlProblem::Unparsable => "not an absolute URL",
            UrlProblem::NotHttps => {
                "only https is allowed (plain http only on a loopback host: 127.0.0.1, ::1, localhost)"
            }
            UrlProblem::Credentials => "a URL with a user name or password is not allowed",
            UrlProblem::QueryOrFragment => "an issuer has no query or fragment",
        })
    }
}

/// A URL the verifier may fetch: `https`, or `http` on a loopback host (for tests and
/// local development). Returns the URL and whether it is plain loopback `http`.
pub(crate) fn checked_url(text: &str) -> Result<(Url, bool), UrlProblem> {
    let url = Url::parse(text).map_err(|_| UrlProblem::Unparsable)?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(UrlProblem::Credentials);
    }
    match url.scheme() {
        "https" if url.host().is_some() => Ok((url, false)),
        "http" if url.host().is_some_and(|h| is_loopback(&h)) => Ok((url, true)),
        _ => Err(UrlProblem::NotHttps),
    }
}

/// An issuer URL: a [`checked_url`] without query or fragment.
pub(crate) fn checked_issuer(text: &str) -> Result<(Url, bool), UrlProblem> {
    let (url, loopback) = checked_url(text)?;
    if url.query().is_some() || url.fragment().is_some() {
        return Err(UrlProblem::QueryOrFragment);
    }
    Ok((url, loopback))
}

fn is_loopback(host: &Host<&str>) -> bool {
    match host {
        Host::Domain(d) => d.eq_ignore_ascii_case("localhost"),
        Host::Ipv4(ip) => IpAddr::V4(*ip).is_loopback(),
        Host::Ipv6(ip) => IpAddr::V6(*ip).is_loopback(),
    }
}

/// The discovery document's URL for `issuer` (OpenID Connect Discovery §4: the issuer
/// without its trailing slash, then `/.well-known/openid-configuration`).
pub(crate) fn discovery_url(issuer: &str) -> Result<Url, UrlProblem> {
    let text = format!(
        "{}/.well-known/openid-configuration",
        issuer.trim_end_matches('/')
    );
    checked_url(&text).map(|(url, _)| url)
}

/// A successful answer.
#[derive(Debug)]
pub(crate) struct Fetched {
    /// The body, at most the cap.
    pub(crate) body: Vec<u8>,
    /// `Cache-Control: max-age`, unless `no-cache` or `no-store` say not to cache.
    pub(crate) max_age: Option<Duration>,
}

/// One HTTP client per key set: a deadline on every fetch, a cap on every body, no
/// redirects to plain http.
pub(crate) struct Fetcher {
    agent: ureq::Agent,
    max_bytes: usize,
}

impl fmt::Debug for Fetcher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fetcher")
            .field("max_bytes", &self.max_bytes)
            .finish_non_exhaustive()
    }
}

impl Fetcher {
    /// A client whose every fetch ends within `timeout` and reads at most `max_bytes`.
    /// `loopback`: the provider is plain `http` on this machine, so no proxy and no
    /// redirects; otherwise only `https`, the proxy of the environment (`HTTPS_PROXY`,
    /// `NO_PROXY`) and at most 3 redirects, all to `https`.
    /// `roots`: the only certificate authorities trusted, in place of the web PKI's.
    pub(crate) fn new(
        timeout: Duration,
        max_bytes: usize,
        loopback: bool,
        roots: Option<Arc<Vec<Certificate<'static>>>>,
    ) -> Fetcher {
        let mut config = ureq::Agent::config_builder()
            .timeout_global(Some(timeout))
            .http_status_as_error(false)
            .https_only(!loopback)
            .max_redirects(if loopback { 0 } else { 3 })
            .max_response_header_size(64 * 1024)
            .user_agent(concat!("secure-api-runtime/", env!("CARGO_PKG_VERSION")))
            .accept("application/json, application/jwk-set+json");
        if loopback {
            config = config.proxy(None);
        }
        if let Some(roots) = roots {
            config = config.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::Specific(roots))
                    .build(),
            );
        }
        Fetcher {
            agent: config.build().new_agent(),
            max_bytes,
        }
    }

    /// GET `url`: a `200 OK` with a body of at most the cap.
    pub(crate) fn get(&self, url: &Url) -> Result<Fetched, FetchError> {
        let mut response = self.agent.get(url.as_str()).call().map_err(transport)?;
        let status = response.status().as_u16();
        if status != 200 {
            return Err(FetchError::Status(status));
        }
        let max_age = response
            .headers()
            .get_all("cache-control")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect::<Vec<_>>()
            .join(",");
        let max_age = cache_max_age(&max_age);
        let limit = u64::try_from(self.max_bytes).unwrap_or(u64::MAX);
        let body = response
            .body_mut()
            .with_config()
            .limit(limit)
            .read_to_vec()
            .map_err(|e| match e {
                ureq::Error::BodyExceedsLimit(_) => FetchError::TooLarge {
                    limit: self.max_bytes,
                },
                e => transport(e),
            })?;
        Ok(Fetched { body, max_age })
    }
}

/// The certificates of `pem`, each read as a trust anchor here so that one rustls could
/// not use is refused now rather than skipped (and the provider's certificate then refused
/// as of an unknown issuer).
pub(crate) fn root_certificates(pem: &[u8]) -> Result<Arc<Vec<Certificate<'static>>>, String> {
    let mut roots = Vec::new();
    for item in ureq::tls::parse_pem(pem) {
        match item.map_err(|e| format!("the PEM cannot be read: {e}"))? {
            PemItem::Certificate(cert) => {
                let der = rustls_pki_types::CertificateDer::from(cert.der());
                webpki::anchor_from_trusted_cert(&der).map_err(|e| {
                    format!(
                        "certificate {} cannot be read as a trust anchor ({e})",
                        roots.len() + 1
                    )
                })?;
                roots.push(cert);
            }
            PemItem::PrivateKey(_) => {
                return Err("the PEM holds a private key: give the certificate authorities' certificates only".to_owned());
            }
            _ => {}
        }
    }
    if roots.is_empty() {
        return Err("the PEM holds no CERTIFICATE block".to_owned());
    }
    Ok(Arc::new(roots))
}

fn transport(e: ureq::Error) -> FetchError {
    match e {
        ureq::Error::Timeout(_) => FetchError::Timeout,
        ureq::Error::Io(io) if io.kind() == std::io::ErrorKind::TimedOut => FetchError::Timeout,
        e => FetchError::Transport(e.to_string()),
    }
}

/// `max-age` of a `Cache-Control` value (RFC 9111 §5.2.2.1): `None` when absent, invalid,
/// or overridden by `no-cache` / `no-store`.
pub(crate) fn cache_max_age(value: &str) -> Option<Duration> {
    let mut max_age = None;
    for directive in value.split(',').map(str::trim) {
        let (name, arg) = match directive.split_once('=') {
            Some((name, arg)) => (name.trim(), Some(arg.trim().trim_matches('"'))),
            None => (directive, None),
        };
        if name.eq_ignore_ascii_case("no-cache") || name.eq_ignore_ascii_case("no-store") {
            return None;
        }
        if name.eq_ignore_ascii_case("max-age") {
            let secs = arg.filter(|a| !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()));
            max_age = secs.map(|s| Duration::from_secs(s.parse().unwrap_or(u64::MAX)));
        }
    }
    max_age
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_https_or_loopback_http() {
        assert!(matches!(
            checked_url("https://idp.example.com/realms/x"),
            Ok((_, false))
        ));
        for loopback in [
            "http://127.0.0.1:8080/",
            "http://127.1.2.3/",
            "http://[::1]:9000/x",
            "http://localhost/",
            "http://LOCALHOST:1/",
        ] {
            assert!(matches!(checked_url(loopback), Ok((_, true))), "{loopback}");
        }
        for refused in [
            "http://idp.example.com/",
            "http://10.0.0.1/",
            "http://localhost.example.com/",
            "http://127.0.0.1.nip.io/",
            "ftp://127.0.0.1/",
            "file:///etc/passwd",
            "idp.example.com",
        ] {
            assert!(checked_url(refused).is_err(), "{refused}");
        }
        assert_eq!(
            checked_url("https://user:pw@idp.example.com/").unwrap_err(),
            UrlProblem::Credentials
        );
        assert_eq!(
            checked_issuer("https://idp.example.com/?tenant=1").unwrap_err(),
            UrlProblem::QueryOrFragment
        );
        assert_eq!(
            checked_issuer("https://idp.example.com/#x").unwrap_err(),
            UrlProblem::QueryOrFragment
        );
    }

    #[test]
    fn discovery_url_drops_one_trailing_slash() {
        assert_eq!(
            discovery_url("https://tenant.auth0.com/").unwrap().as_str(),
            "https://tenant.auth0.com/.well-known/openid-configuration"
        );
        assert_eq!(
            discovery_url("https://kc.example.com/realms/acme")
                .unwrap()
                .as_str(),
            "https://kc.example.com/realms/acme/.well-known/openid-configuration"
        );
    }

    #[test]
    fn max_age_of_cache_control() {
        let secs = |s: &str| cache_max_age(s).map(|d| d.as_secs());
        assert_eq!(secs("public, max-age=3600"), Some(3600));
        assert_eq!(secs("Max-Age=\"60\", must-revalidate"), Some(60));
        assert_eq!(secs("max-age=0"), Some(0));
        assert_eq!(secs("max-age=99999999999999999999999"), Some(u64::MAX));
        assert_eq!(secs("no-cache, max-age=3600"), None);
        assert_eq!(secs("max-age=3600, no-store"), None);
        assert_eq!(secs("max-age=-1"), None);
        assert_eq!(secs("max-age="), None);
        assert_eq!(secs("s-maxage=60"), None);
        assert_eq!(secs(""), None);
    }
}
