//! The normalisers and format rules on arbitrary strings.
//!
//! Differential and algebraic properties: `nfc` and `nfkc` agree with unicode-normalization
//! (whatever their fast paths skip); every normaliser is idempotent; `trim` leaves no
//! surrounding whitespace; `email` never accepts an address over 254 bytes or a local part
//! over 64; what `url` accepts, the WHATWG parser reads as an http(s) URL with a host and
//! no credentials; `ip` agrees with std's parser and `uuid` with the uuid crate; the deny list's
//! incremental matcher agrees with comparing whole keys; and no rule panics.
#![no_main]

use std::net::IpAddr;
use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use secure_api_runtime::__private::{
    deny_key, has_public_host, is_denied_key, is_email, is_ip, is_url, is_uuid, lowercase, nfc,
    nfkc, trim, uppercase,
};
use unicode_normalization::UnicodeNormalization;

/// A deny list as the derive builds it: the keys of its entries.
static DENIED_KEYS: LazyLock<Vec<String>> = LazyLock::new(|| {
    [
        "admin",
        "root",
        "null",
        "undefined",
        "0",
        "a",
        "ab\u{301}",
        "\u{1f600}",
    ]
    .iter()
    .map(|e| deny_key(e))
    .collect()
});

/// Applies `normalise` and checks that a second application changes nothing.
fn idempotent(name: &str, s: &str, normalise: fn(&mut String)) -> String {
    let mut once = s.to_owned();
    normalise(&mut once);
    let mut twice = once.clone();
    normalise(&mut twice);
    assert_eq!(once, twice, "{name} is not idempotent");
    once
}

fuzz_target!(|data: &[u8]| {
    let Ok(s) = std::str::from_utf8(data) else {
        return;
    };
    let composed = idempotent("nfc", s, nfc);
    assert_eq!(composed, s.nfc().collect::<String>(), "nfc disagrees");
    let compat = idempotent("nfkc", s, nfkc);
    assert_eq!(compat, s.nfkc().collect::<String>(), "nfkc disagrees");

    let trimmed = idempotent("trim", s, trim);
    assert_eq!(trimmed, s.trim(), "trim disagrees with str::trim");
    let lower = idempotent("lowercase", s, lowercase);
    assert_eq!(
        lower,
        s.to_lowercase(),
        "lowercase disagrees with str::to_lowercase"
    );
    let upper = idempotent("uppercase", s, uppercase);
    assert_eq!(
        upper,
        s.to_uppercase(),
        "uppercase disagrees with str::to_uppercase"
    );

    if is_email(s) {
        assert!(s.len() <= 254, "an address of {} bytes", s.len());
        let local = s.rsplit_once('@').expect("an address has an @").0;
        assert!(local.len() <= 64, "a local part of {} bytes", local.len());
    }
    assert_eq!(
        is_ip(s),
        s.parse::<IpAddr>().is_ok(),
        "ip disagrees with std"
    );
    if is_uuid(s) {
        assert!(
            uuid::Uuid::parse_str(s).is_ok(),
            "uuid accepted what the uuid crate refuses"
        );
    }
    // What `url` accepts, a WHATWG parser (the one reqwest fetches with) reads as an http(s)
    // URL with a host; `url(public)` is both rules.
    if is_url(s) {
        let parsed = url::Url::parse(s).expect("an accepted URL parses");
        assert!(matches!(parsed.scheme(), "http" | "https"));
        assert!(parsed.host().is_some(), "an accepted URL without a host");
        assert!(parsed.username().is_empty() && parsed.password().is_none());
    }
    let _ = has_public_host(s);
    // The deny list's incremental matcher (with its ASCII table) against the whole key.
    let key = deny_key(s);
    assert!(
        is_denied_key(s, &[key.as_str()]),
        "a value is not denied by its own key"
    );
    let denied = DENIED_KEYS.contains(&key);
    assert_eq!(
        is_denied_key(s, &DENIED_KEYS[..]),
        denied,
        "the deny-list matcher disagrees"
    );
});
