//! The checks and normalisers behind the `#[secure(...)]` rules.
//!
//! Each function is usable on its own, without the derive. None of them allocates when the
//! input passes, and normalisers leave an already-normalised string untouched.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::net::IpAddr;
use std::rc::Rc;
use std::sync::{Arc, OnceLock};

use regex::Regex;
use unicode_normalization::{IsNormalized, UnicodeNormalization};

/// Values with a length: strings count `char`s (Unicode scalar values), collections count
/// elements. Used by the `length(min, max)` rule.
#[diagnostic::on_unimplemented(
    message = "the `length` rule does not apply to `{Self}`",
    label = "`{Self}` has no length",
    note = "`length` applies to strings and collections; use `range(min, max)` for numbers"
)]
pub trait HasLength {
    /// The length: `char`s for strings, elements for collections.
    fn length(&self) -> usize;
}

impl HasLength for str {
    fn length(&self) -> usize {
        self.chars().count()
    }
}

macro_rules! string_like {
    ($($t:ty),*) => {$(
        impl HasLength for $t {
            fn length(&self) -> usize {
                str::length(self)
            }
        }
        impl AsStr for $t {
            fn as_str(&self) -> &str {
                self
            }
        }
    )*};
}
string_like!(String, Box<str>, Rc<str>, Arc<str>, Cow<'_, str>);

impl AsStr for str {
    fn as_str(&self) -> &str {
        self
    }
}

impl<T: HasLength + ?Sized> HasLength for &T {
    fn length(&self) -> usize {
        (**self).length()
    }
}

impl<T: AsStr + ?Sized> AsStr for &T {
    fn as_str(&self) -> &str {
        (**self).as_str()
    }
}

macro_rules! collection {
    ($([$($g:tt)*] $t:ty),* $(,)?) => {$(
        impl<$($g)*> HasLength for $t {
            fn length(&self) -> usize {
                self.len()
            }
        }
    )*};
}
collection!(
    [T] Vec<T>,
    [T] VecDeque<T>,
    [T] [T],
    [T, const N: usize] [T; N],
    [T] Box<[T]>,
    [K, V, S] HashMap<K, V, S>,
    [T, S] HashSet<T, S>,
    [K, V] BTreeMap<K, V>,
    [T] BTreeSet<T>,
);

/// Whether `value`'s [`HasLength::length`] is within the inclusive bounds.
pub fn length_within<T: HasLength + ?Sized>(value: &T, min: usize, max: usize) -> bool {
    let n = value.length();
    min <= n && n <= max
}

/// Whether `value` is within the inclusive bounds. `NaN` is never within bounds.
pub fn in_range<T: PartialOrd + ?Sized>(value: &T, min: Option<&T>, max: Option<&T>) -> bool {
    min.is_none_or(|min| min <= value) && max.is_none_or(|max| value <= max)
}

/// Whether `value` equals one of `allowed`.
pub fn one_of<T: PartialEq + ?Sized>(value: &T, allowed: &[&T]) -> bool {
    allowed.contains(&value)
}

/// String views of string-like fields; used by the string rules (`pattern`, `email`, `url`,
/// `ip`, `uuid`, `one_of`, `deny`).
#[diagnostic::on_unimplemented(
    message = "this rule needs a string field, but the field is `{Self}`",
    label = "not a string",
    note = "string rules apply to `String`, `&str`, `Cow<str>`, `Box<str>` and `Arc<str>` (or `Option`s of them)"
)]
pub trait AsStr {
    /// The string.
    fn as_str(&self) -> &str;
}

/// Whether `value`, compared case-insensitively, is one of `entries_lowercase` (which must
/// already be lowercase; the derive lowercases them at compile time).
///
/// ```
/// use secure_api_runtime::validation::rules::is_denied;
/// assert!(is_denied("Admin", &["admin", "root"]));
/// assert!(!is_denied("administrator", &["admin"]));
/// ```
pub fn is_denied(value: &str, entries_lowercase: &[&str]) -> bool {
    if value.is_ascii() {
        entries_lowercase
            .iter()
            .any(|e| e.len() == value.len() && value.eq_ignore_ascii_case(e))
    } else {
        entries_lowercase
            .iter()
            .any(|e| value.chars().flat_map(char::to_lowercase).eq(e.chars()))
    }
}

/// Removes leading and trailing whitespace in place, without reallocating.
pub fn trim(value: &mut String) {
    let end = value.trim_end().len();
    value.truncate(end);
    let start = value.len() - value.trim_start().len();
    if start > 0 {
        value.drain(..start);
    }
}

/// Lowercases in place; allocates only for non-ASCII input that changes.
pub fn lowercase(value: &mut String) {
    if value.is_ascii() {
        value.make_ascii_lowercase();
    } else if value.chars().any(|c| !case_fixed(c, char::to_lowercase(c))) {
        *value = value.to_lowercase();
    }
}

/// Uppercases in place; allocates only for non-ASCII input that changes.
pub fn uppercase(value: &mut String) {
    if value.is_ascii() {
        value.make_ascii_uppercase();
    } else if value.chars().any(|c| !case_fixed(c, char::to_uppercase(c))) {
        *value = value.to_uppercase();
    }
}

fn case_fixed(c: char, mut mapped: impl Iterator<Item = char>) -> bool {
    mapped.next() == Some(c) && mapped.next().is_none()
}

/// Puts the string in Unicode Normalization Form C in place; allocates only when it was not
/// already normalised.
pub fn nfc(value: &mut String) {
    if value.is_ascii() {
        return;
    }
    if unicode_normalization::is_nfc_quick(value.chars()) != IsNormalized::Yes {
        let normalised: String = value.nfc().collect();
        if normalised != *value {
            *value = normalised;
        }
    }
}

/// Longest accepted address (RFC 5321 forward-path of 256 octets, less the angle brackets).
pub const EMAIL_MAX_LEN: usize = 254;
/// Longest accepted local part (RFC 5321 §4.5.3.1.1).
pub const EMAIL_LOCAL_MAX_LEN: usize = 64;

/// Whether `value` is an e-mail address of the dot-atom form `local@domain.tld`.
///
/// Follows RFC 5321's limits (local part at most 64 octets, whole address at most 254) and
/// rejects whitespace, control characters, quoted local parts, comments, IP-literal domains
/// and single-label domains. Non-ASCII letters are allowed (RFC 6531).
///
/// ```
/// use secure_api_runtime::validation::rules::is_email;
/// assert!(is_email("alice@example.com"));
/// assert!(!is_email("alice@localhost"));
/// assert!(!is_email("al ice@example.com"));
/// ```
pub fn is_email(value: &str) -> bool {
    if value.len() > EMAIL_MAX_LEN {
        return false;
    }
    if value.is_ascii() {
        return is_ascii_email(value.as_bytes());
    }
    let Some((local, domain)) = value.rsplit_once('@') else {
        return false;
    };
    if local.is_empty() || local.len() > EMAIL_LOCAL_MAX_LEN {
        return false;
    }
    let atext = |c: char| {
        c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c) || is_intl_letter(c)
    };
    if !dot_separated(local, |part| !part.is_empty() && part.chars().all(atext)) {
        return false;
    }
    is_domain(domain, true)
}

/// [`is_email`] for ASCII input, in one pass over the bytes: the same rules as the general
/// path, which handles internationalised addresses.
fn is_ascii_email(b: &[u8]) -> bool {
    let Some(at) = b.iter().rposition(|&c| c == b'@') else {
        return false;
    };
    let (local, domain) = (&b[..at], &b[at + 1..]);
    if local.is_empty() || local.len() > EMAIL_LOCAL_MAX_LEN {
        return false;
    }
    let mut prev_dot = true; // no leading dot
    for &c in local {
        if c == b'.' {
            if prev_dot {
                return false;
            }
            prev_dot = true;
        } else if c.is_ascii_alphanumeric() || b"!#$%&'*+/=?^_`{|}~-".contains(&c) {
            prev_dot = false;
        } else {
            return false;
        }
    }
    if prev_dot || domain.is_empty() || domain.len() > 253 {
        return false;
    }
    let (mut label_len, mut labels, mut all_digits, mut prev) = (0usize, 1usize, true, b'.');
    for &c in domain {
        if c == b'.' {
            if label_len == 0 || prev == b'-' {
                return false;
            }
            labels += 1;
            label_len = 0;
            all_digits = true;
        } else if c.is_ascii_alphanumeric() || c == b'-' {
            if (c == b'-' && label_len == 0) || label_len == 63 {
                return false;
            }
            label_len += 1;
            all_digits &= c.is_ascii_digit();
        } else {
            return false;
        }
        prev = c;
    }
    label_len > 0 && prev != b'-' && labels >= 2 && !all_digits
}

fn is_intl_letter(c: char) -> bool {
    !c.is_ascii() && c.is_alphanumeric()
}

fn dot_separated(value: &str, mut part_ok: impl FnMut(&str) -> bool) -> bool {
    value.split('.').all(&mut part_ok)
}

/// A DNS name of LDH labels (plus non-ASCII letters for IDNs): labels of 1 to 63 octets,
/// not starting or ending with `-`, at most 253 octets, and a non-numeric last label.
fn is_domain(value: &str, need_dot: bool) -> bool {
    if value.is_empty() || value.len() > 253 || (need_dot && !value.contains('.')) {
        return false;
    }
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || is_intl_letter(c))
    };
    if !dot_separated(value, label_ok) {
        return false;
    }
    let last = value.rsplit('.').next().unwrap_or_default();
    !last.chars().all(|c| c.is_ascii_digit())
}

/// Longest accepted URL.
pub const URL_MAX_LEN: usize = 2048;

/// Whether `value` is an absolute `http` or `https` URL with a host.
///
/// Other schemes (`javascript:`, `data:`, `file:`, ...) are rejected, as are user
/// information (`https://user:pass@host`, a phishing vector), whitespace, control
/// characters and URLs longer than 2048 bytes.
///
/// ```
/// use secure_api_runtime::validation::rules::is_url;
/// assert!(is_url("https://example.com/a?b=c#d"));
/// assert!(is_url("http://127.0.0.1:8080/"));
/// assert!(!is_url("javascript:alert(1)"));
/// assert!(!is_url("https://user@example.com/"));
/// ```
pub fn is_url(value: &str) -> bool {
    if value.len() > URL_MAX_LEN || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return false;
    }
    let Some((scheme, rest)) = value.split_once("://") else {
        return false;
    };
    if !scheme.eq_ignore_ascii_case("http") && !scheme.eq_ignore_ascii_case("https") {
        return false;
    }
    let authority_end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..authority_end];
    if authority.contains('@') {
        return false;
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return false;
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after {
            "" => return true,
            _ => match after.strip_prefix(':') {
                Some(port) => (None, Some(port)),
                None => return false,
            },
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(authority), None),
        }
    };
    if let Some(port) = port {
        if port.is_empty() || port.len() > 5 || !port.bytes().all(|b| b.is_ascii_digit()) {
            return false;
        }
        if port.parse::<u32>().map_or(true, |p| p == 0 || p > 65535) {
            return false;
        }
    }
    match host {
        None => true,
        Some(host) => host.parse::<std::net::Ipv4Addr>().is_ok() || is_domain(host, false),
    }
}

/// Whether `value` is an IPv4 or IPv6 address.
pub fn is_ip(value: &str) -> bool {
    value.parse::<IpAddr>().is_ok()
}

/// Whether `value` is a UUID in the hyphenated form `xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx`.
pub fn is_uuid(value: &str) -> bool {
    value.len() == 36 && uuid::Uuid::try_parse(value).is_ok()
}

/// A `pattern` rule's regex, compiled once per process on first use.
///
/// The derive checks the pattern at compile time (with the same regex engine) and anchors it
/// so that it must match the whole value.
#[derive(Debug)]
pub struct Pattern {
    source: &'static str,
    regex: OnceLock<Option<Regex>>,
}

impl Pattern {
    /// A pattern that is compiled on first use. `source` is matched as written: anchor it
    /// (`\A(?:...)\z`) for whole-value matching, as the derive does.
    pub const fn new(source: &'static str) -> Self {
        Pattern {
            source,
            regex: OnceLock::new(),
        }
    }

    /// Whether `value` matches. A pattern that fails to compile matches nothing (fail
    /// closed) and is logged once at error level.
    pub fn is_match(&self, value: &str) -> bool {
        self.regex
            .get_or_init(|| match Regex::new(self.source) {
                Ok(re) => Some(re),
                Err(e) => {
                    log::error!(
                        "secure-api: pattern {:?} does not compile ({e}); every value fails it",
                        self.source
                    );
                    None
                }
            })
            .as_ref()
            .is_some_and(|re| re.is_match(value))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn email_limits_follow_rfc_5321() {
        let local64 = "a".repeat(64);
        assert!(is_email(&format!("{local64}@example.com")));
        assert!(!is_email(&format!("{local64}a@example.com")));
        let domain = format!(
            "{}.{}.{}.com",
            "b".repeat(63),
            "c".repeat(63),
            "d".repeat(57)
        );
        let at_limit = format!("{local64}@{domain}");
        assert_eq!(at_limit.len(), 254);
        assert!(is_email(&at_limit));
        let over = format!("{local64}@e{domain}");
        assert!(!is_email(&over));
    }

    #[test]
    fn ascii_fast_path_agrees_with_the_general_path() {
        let samples = [
            "a@b.co",
            "a.b@c.d.ef",
            "-a@b.cd",
            "a@-b.cd",
            "a@b-.cd",
            "a@b..cd",
            "a@.b.cd",
            "a@b.cd.",
            "a.@b.cd",
            ".a@b.cd",
            "a..b@c.de",
            "a@b.123",
            "a@b.c1",
            "a@b",
            "@b.cd",
            "a@",
            "a b@c.de",
            "a@b_c.de",
            "a@@b.cd",
            "x@1.2.3.4",
            "o'k+t@x-y.z9",
        ];
        for s in samples {
            let general = {
                let (local, domain) = s.rsplit_once('@').unwrap_or(("", ""));
                !local.is_empty()
                    && local.len() <= EMAIL_LOCAL_MAX_LEN
                    && dot_separated(local, |p| {
                        !p.is_empty()
                            && p.chars().all(|c| {
                                c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-".contains(c)
                            })
                    })
                    && is_domain(domain, true)
            };
            assert_eq!(is_email(s), general, "{s:?}");
        }
    }

    #[test]
    fn email_rejects_malformed_addresses() {
        for bad in [
            "",
            "@example.com",
            "alice@",
            "alice",
            "alice@@example.com",
            "al\u{0}ice@example.com",
            "alice@exa mple.com",
            "alice\t@example.com",
            ".alice@example.com",
            "alice.@example.com",
            "al..ice@example.com",
            "alice@-example.com",
            "alice@example-.com",
            "alice@example..com",
            "alice@example.123",
            "\"alice\"@example.com",
            "alice@[127.0.0.1]",
            "alice@example.com\n",
        ] {
            assert!(!is_email(bad), "{bad:?} accepted");
        }
        for good in [
            "alice@example.com",
            "a.b+tag@sub.example.co.uk",
            "o'brien@example.ie",
            "jörg@bücher.de",
        ] {
            assert!(is_email(good), "{good:?} rejected");
        }
    }

    #[test]
    fn urls() {
        for good in [
            "https://example.com",
            "HTTP://Example.COM:65535/x",
            "https://[::1]:8443/path",
            "https://[::1]",
            "https://localhost/",
            "https://example.com?q=1#frag",
        ] {
            assert!(is_url(good), "{good:?} rejected");
        }
        for bad in [
            "ftp://example.com",
            "https://",
            "https://:80/",
            "https://example.com:0/",
            "https://example.com:65536/",
            "https://exa mple.com",
            "https://example.com/\u{7}",
            "//example.com",
            "https://[zz]/",
            "data:text/html,<script>",
        ] {
            assert!(!is_url(bad), "{bad:?} accepted");
        }
    }

    #[test]
    fn normalisers_are_in_place_and_idempotent() {
        let mut s = String::from("  Alice \t");
        trim(&mut s);
        assert_eq!(s, "Alice");
        lowercase(&mut s);
        assert_eq!(s, "alice");
        let mut g = String::from("STRASSE Ärger");
        lowercase(&mut g);
        assert_eq!(g, "strasse ärger");
        uppercase(&mut g);
        assert_eq!(g, "STRASSE ÄRGER");
        let mut decomposed = String::from("e\u{301}");
        nfc(&mut decomposed);
        assert_eq!(decomposed, "\u{e9}");
    }

    #[test]
    fn normalising_normalised_input_keeps_the_allocation() {
        let mut s = String::with_capacity(32);
        s.push_str("alice");
        let ptr = s.as_ptr();
        trim(&mut s);
        lowercase(&mut s);
        nfc(&mut s);
        assert_eq!(ptr, s.as_ptr());
        assert_eq!(s.capacity(), 32);
    }

    #[test]
    fn deny_is_case_insensitive_for_unicode() {
        assert!(is_denied("ÄDMIN", &["ädmin"]));
        assert!(!is_denied("ädmins", &["ädmin"]));
    }

    #[test]
    fn lengths_count_chars() {
        assert_eq!("ü".length(), 1);
        assert!(length_within("abc", 3, 3));
        assert!(length_within(&vec![1, 2], 0, 2));
        assert!(!in_range(&f64::NAN, Some(&0.0), Some(&1.0)));
    }
}
