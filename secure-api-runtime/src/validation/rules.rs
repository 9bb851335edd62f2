//! The checks and normalisers behind the `#[secure(...)]` rules.
//!
//! The checks that are useful on their own ([`is_email`], [`is_url`], [`is_public_url`],
//! [`is_public_ip`], [`is_ip`], [`is_uuid`], [`DenyList`]) are re-exported from
//! [`crate::validation`]; the rest (normalisers, bounds, look-alike keys, patterns) is what
//! the derive's generated code calls, through `__private`. None of them allocates when the
//! input passes, except the deny check on non-ASCII input that is not already lowercase
//! and [`is_public_url`], which parses the URL as an HTTP client would; normalisers leave an
//! already-normalised string untouched.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet, VecDeque};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
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

/// The form in which `deny` compares strings: the UTS #39 confusable skeleton of the
/// lowercased value, lowercased again.
///
/// Default-ignorable code points (zero-width spaces and joiners, soft hyphens, bidi
/// controls, variation selectors, ...) are removed, and every character is replaced by the
/// prototype of its confusable class from Unicode's `confusables.txt`, so that values that
/// *look* the same get the same key: fullwidth `ａｄｍｉｎ`, `adm\u{200B}in` and Cyrillic
/// `аdmin` all have the key of `admin`. Case is folded before the skeleton is taken (as UTS
/// #39 suggests for case-insensitive comparison) and after (prototypes such as `O` for `0`
/// are uppercase), so `ADMIN` and `r00t` match `admin` and `root`.
///
/// A key is for comparison only: it is not meant to be shown or stored as the value (the
/// key of `admin` is `adrnin`, because `rn` looks like `m`).
pub fn deny_key(value: &str) -> String {
    let mut key = String::with_capacity(value.len());
    for_each_key_char(value, |c| {
        key.push(c);
        true
    });
    key
}

/// Feeds the characters of `deny_key(value)` to `f` until it returns `false`; returns
/// whether every character was fed. Allocates only for non-ASCII input that is not already
/// lowercase (the skeleton is computed from a `&str`).
fn for_each_key_char(value: &str, mut f: impl FnMut(char) -> bool) -> bool {
    let lowered: Cow<'_, str> = if value.chars().all(|c| case_fixed(c, c.to_lowercase())) {
        Cow::Borrowed(value)
    } else {
        Cow::Owned(value.chars().flat_map(char::to_lowercase).collect())
    };
    unicode_security::skeleton(&lowered)
        .flat_map(char::to_lowercase)
        .all(&mut f)
}

/// The deny key of each ASCII character, computed once per process from the Unicode data:
/// for ASCII input the key is the concatenation of the characters' keys, so no
/// normalisation or lowercasing pass is needed. A character whose key is longer than
/// [`ASCII_KEY_MAX`] bytes or contains a combining mark (which could be reordered against
/// its neighbours) is marked with length `u8::MAX` and sends its input down the general
/// path.
fn ascii_keys() -> &'static [(u8, [u8; ASCII_KEY_MAX]); 128] {
    static TABLE: OnceLock<[(u8, [u8; ASCII_KEY_MAX]); 128]> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut table = [(u8::MAX, [0; ASCII_KEY_MAX]); 128];
        for (b, slot) in table.iter_mut().enumerate() {
            let key = deny_key(char::from(b as u8).encode_utf8(&mut [0; 4]));
            let plain = key
                .chars()
                .all(|c| unicode_normalization::char::canonical_combining_class(c) == 0);
            if plain && key.len() <= ASCII_KEY_MAX {
                slot.0 = key.len() as u8;
                slot.1[..key.len()].copy_from_slice(key.as_bytes());
            }
        }
        table
    })
}

const ASCII_KEY_MAX: usize = 6;

/// Whether `deny_key(value)` is one of `keys`, which must be [`deny_key`] outputs (the
/// derive computes them at compile time with the same Unicode data).
///
/// The value's key is produced one character at a time and compared with the keys as it
/// grows, and the work stops at the first character where no key matches any more (for
/// most values the first or second). ASCII input is mapped through a per-character table
/// computed once per process. Nothing is allocated unless the value is non-ASCII and not
/// already lowercase, or there are more than 64 keys.
pub fn is_denied_key<K: AsRef<str>>(value: &str, keys: &[K]) -> bool {
    if keys.is_empty() {
        return false;
    }
    if keys.len() > 64 {
        let key = deny_key(value);
        return keys.iter().any(|k| k.as_ref() == key);
    }
    if value.is_ascii()
        && let Some(denied) = ascii_denied(value.as_bytes(), keys)
    {
        return denied;
    }
    let mut prefix = KeyPrefix::new(keys);
    for_each_key_char(value, |c| {
        prefix.push(c.encode_utf8(&mut [0; 4]).as_bytes())
    });
    prefix.complete()
}

/// [`is_denied_key`] for ASCII input, through the per-character table: each key is walked
/// along the value until the first byte that differs. `None` when a character needs the
/// general path (its key is long or holds a combining mark); the keys' prefixes before it
/// are exact, because combining marks never move across the plain characters before them.
fn ascii_denied<K: AsRef<str>>(value: &[u8], keys: &[K]) -> Option<bool> {
    let table = ascii_keys();
    let mut slow = false;
    let denied = keys.iter().any(|key| {
        let key = key.as_ref().as_bytes();
        let mut pos = 0;
        for &b in value {
            let (n, bytes) = &table[usize::from(b)];
            match *n {
                1 => {
                    if key.get(pos) != Some(&bytes[0]) {
                        return false;
                    }
                    pos += 1;
                }
                u8::MAX => {
                    slow = true;
                    return false;
                }
                n => {
                    let n = usize::from(n);
                    if key.get(pos..pos + n) != Some(&bytes[..n]) {
                        return false;
                    }
                    pos += n;
                }
            }
        }
        pos == key.len()
    });
    if slow && !denied { None } else { Some(denied) }
}

/// The keys (at most 64) that still start with the part of a value's key produced so far.
struct KeyPrefix<'a, K> {
    keys: &'a [K],
    alive: u64,
    len: usize,
}

impl<'a, K: AsRef<str>> KeyPrefix<'a, K> {
    fn new(keys: &'a [K]) -> Self {
        debug_assert!(keys.len() <= 64);
        KeyPrefix {
            keys,
            alive: u64::MAX >> (64 - keys.len()),
            len: 0,
        }
    }

    /// Appends `bytes` to the value's key; returns whether some key still matches.
    #[inline]
    fn push(&mut self, bytes: &[u8]) -> bool {
        if let [b] = bytes {
            return self.push_byte(*b);
        }
        let end = self.len + bytes.len();
        let mut rest = self.alive;
        while rest != 0 {
            let i = rest.trailing_zeros();
            rest &= rest - 1;
            let key = self.keys[i as usize].as_ref().as_bytes();
            if key.get(self.len..end) != Some(bytes) {
                self.alive &= !(1 << i);
            }
        }
        self.len = end;
        self.alive != 0
    }

    /// [`KeyPrefix::push`] of one byte (most ASCII characters are their own key).
    #[inline]
    fn push_byte(&mut self, b: u8) -> bool {
        let mut rest = self.alive;
        while rest != 0 {
            let i = rest.trailing_zeros();
            rest &= rest - 1;
            if self.keys[i as usize].as_ref().as_bytes().get(self.len) != Some(&b) {
                self.alive &= !(1 << i);
            }
        }
        self.len += 1;
        self.alive != 0
    }

    /// Whether a key equals the whole value's key.
    fn complete(&self) -> bool {
        let mut rest = self.alive;
        while rest != 0 {
            let i = rest.trailing_zeros();
            rest &= rest - 1;
            if self.keys[i as usize].as_ref().len() == self.len {
                return true;
            }
        }
        false
    }
}

/// A `deny` list built at run time, refusing every value that *looks like* one of its
/// entries: the same check as the `deny(...)` rule of `#[derive(SecureInput)]`.
///
/// Values and entries are compared by their UTS #39 confusable skeletons (Unicode's
/// `confusables.txt`), case-insensitively and with default-ignorable code points (zero-width
/// spaces and joiners, soft hyphens, bidi controls, ...) removed: fullwidth `ａｄｍｉｎ`,
/// `adm\u{200B}in`, Cyrillic `аdmin`, `ADMIN` and `adrnin` (`rn` looks like `m`) all match
/// `admin`, and digits that look like letters count as those letters (`r00t` matches
/// `root`). The entries' skeletons are computed once, in [`DenyList::new`]; a check
/// allocates nothing for ASCII values.
///
/// ```
/// use secure_api_runtime::validation::DenyList;
/// let reserved = DenyList::new(["admin", "root", "null", "undefined"]);
/// assert!(reserved.is_denied("Admin"));
/// assert!(reserved.is_denied("ａｄｍｉｎ"));         // fullwidth
/// assert!(reserved.is_denied("adm\u{200B}in"));     // zero-width space
/// assert!(reserved.is_denied("\u{430}dmin"));       // Cyrillic а
/// assert!(!reserved.is_denied("administrator"));
/// ```
#[derive(Debug, Clone)]
pub struct DenyList {
    keys: Vec<String>,
}

impl DenyList {
    /// A list denying every value that looks like one of `entries`.
    pub fn new<I>(entries: I) -> Self
    where
        I: IntoIterator,
        I::Item: AsRef<str>,
    {
        let mut keys: Vec<String> = entries.into_iter().map(|e| deny_key(e.as_ref())).collect();
        keys.sort_unstable();
        keys.dedup();
        DenyList { keys }
    }

    /// Whether `value` looks like one of the entries.
    pub fn is_denied(&self, value: &str) -> bool {
        is_denied_key(value, &self.keys)
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

/// Puts the string in Unicode Normalization Form KC in place; allocates only when it was
/// not already normalised.
///
/// NFKC also folds compatibility forms onto their plain equivalents: fullwidth `ａｂｃ`
/// becomes `abc`, `ﬁ` becomes `fi`, `①` becomes `1`, `ℌ` becomes `H`. Use it for identifiers
/// (usernames, slugs, tags); keep `nfc` for free text, where those forms carry meaning.
pub fn nfkc(value: &mut String) {
    if value.is_ascii() {
        return;
    }
    if unicode_normalization::is_nfkc_quick(value.chars()) != IsNormalized::Yes {
        let normalised: String = value.nfkc().collect();
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
/// use secure_api_runtime::validation::is_email;
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
/// use secure_api_runtime::validation::is_url;
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
        Some(host) => {
            host.parse::<std::net::Ipv4Addr>().is_ok()
                || (is_domain(host, false) && whatwg_host(host))
        }
    }
}

/// Whether a WHATWG URL parser (browsers, and the `url` crate that reqwest uses) accepts a
/// host name that [`is_domain`] accepted: a name no HTTP client can resolve is not a URL.
/// Two kinds can fail, and only those are parsed again (both found by the `normalise` fuzz
/// target): names that IDNA (UTS #46) cannot map to ASCII (non-ASCII letters, `xn--`
/// labels), and names whose last label is a hexadecimal number (`a.0x`, `a.0x7f`), which
/// WHATWG reads as an IPv4 address.
fn whatwg_host(host: &str) -> bool {
    let starts = |label: &str, prefix: &[u8]| {
        label
            .as_bytes()
            .get(..prefix.len())
            .is_some_and(|p| p.eq_ignore_ascii_case(prefix))
    };
    let last = host.rsplit('.').next().unwrap_or_default();
    let plain =
        host.is_ascii() && !host.split('.').any(|l| starts(l, b"xn--")) && !starts(last, b"0x");
    plain || url::Host::parse(host).is_ok()
}

/// Whether `value` passes [`is_url`] and names a public internet host: the `url(public)`
/// rule, a guard against server-side request forgery (SSRF) for URLs the server will fetch
/// (webhooks, avatars by URL, link previews).
///
/// The host is read as WHATWG URL parsers read it (browsers, and the `url` crate that
/// `reqwest` uses), so what is checked is what an HTTP client would connect to: IPv4
/// addresses in hexadecimal, octal, decimal or shortened form (`0x7f000001`, `0177.0.0.1`,
/// `2130706433`, `127.1`), percent-encoded and IDNA-mapped names (fullwidth `ｌｏｃａｌｈｏｓｔ`
/// is `localhost`) and IPv6 literals are all normalised before they are checked.
///
/// Refused:
/// - addresses that [`is_public_ip`] refuses: loopback, private (RFC 1918, IPv6 unique
///   local), link-local, CGNAT, multicast, unspecified, broadcast, documentation,
///   benchmarking, reserved and other special-purpose ranges, cloud metadata endpoints
///   (`169.254.169.254`, `fd00:ec2::254`, `100.100.100.200`), and IPv6 forms that embed a
///   refused IPv4 address (IPv4-mapped, NAT64, 6to4);
/// - names that cannot be public: single-label names (`localhost`, `metadata`,
///   `instance-data`, `kubernetes`: resolved through the server's DNS search list), and
///   names under `localhost`, `local`, `localdomain`, `internal` (which holds
///   `metadata.google.internal`), `home.arpa` and the rest of `arpa`, `test`, `invalid`,
///   `onion`, and the never-delegated `lan`, `intranet`, `private`, `corp` and `home`, in
///   any case and with trailing dots.
///
/// **DNS rebinding.** A public name can resolve to a private address (`127.0.0.1.nip.io`,
/// or a name whose DNS answer changes between this check and the request). This rule only
/// sees the URL: check the address the client actually connects to as well, with
/// [`is_public_ip`] in the HTTP client's resolver or connector.
///
/// ```
/// use secure_api_runtime::validation::is_public_url;
/// assert!(is_public_url("https://example.com/hook"));
/// assert!(is_public_url("https://93.184.216.34/"));
/// for refused in [
///     "http://127.0.0.1/",
///     "http://0x7f000001/",
///     "http://[::ffff:127.0.0.1]/",
///     "http://169.254.169.254/latest/meta-data/",
///     "http://metadata.google.internal/",
///     "http://LOCALHOST/",
///     "http://api.localhost/",
///     "http://10.0.0.7:6379/",
/// ] {
///     assert!(!is_public_url(refused), "{refused}");
/// }
/// ```
pub fn is_public_url(value: &str) -> bool {
    is_url(value) && has_public_host(value)
}

/// Whether the host of `value`, parsed as a WHATWG URL, is public (the second half of
/// [`is_public_url`], without the syntax rules of [`is_url`]).
pub fn has_public_host(value: &str) -> bool {
    let Ok(parsed) = url::Url::parse(value) else {
        return false;
    };
    match parsed.host() {
        Some(url::Host::Ipv4(v4)) => is_public_ipv4(v4),
        Some(url::Host::Ipv6(v6)) => is_public_ipv6(v6),
        Some(url::Host::Domain(name)) => is_public_name(name),
        None => false,
    }
}

/// Top-level names (and `home.arpa`-style suffixes) that never name a public host.
const NON_PUBLIC_SUFFIXES: &[&str] = &[
    "localhost",
    "local",
    "localdomain",
    "internal",
    "arpa",
    "test",
    "invalid",
    "onion",
    "lan",
    "intranet",
    "private",
    "corp",
    "home",
];

/// Whether a domain name (as the `url` crate leaves it: percent-decoded, IDNA-mapped,
/// lowercase ASCII) can name a public host.
fn is_public_name(name: &str) -> bool {
    let name = name.trim_end_matches('.');
    // A name that still parses as an address (the URL parser reads only WHATWG's forms).
    if name.parse::<IpAddr>().is_ok() {
        return false;
    }
    let Some((_, tld)) = name.rsplit_once('.') else {
        // Single label: resolved through the DNS search list, to an internal host.
        return false;
    };
    if name.is_empty() || name.split('.').any(str::is_empty) {
        return false;
    }
    let tld = tld.to_ascii_lowercase();
    !NON_PUBLIC_SUFFIXES.contains(&tld.as_str())
}

/// Whether `ip` is a public, globally routable unicast address: the connect-time half of
/// the `url(public)` SSRF guard.
///
/// Call it on every address the HTTP client is about to connect to (for example in a
/// custom DNS resolver or connector), so that a public name resolving to a private address
/// (DNS rebinding) is refused too. IPv4-mapped (`::ffff:a.b.c.d`) and NAT64
/// (`64:ff9b::a.b.c.d`) addresses are judged by the IPv4 address they carry.
///
/// Refused IPv4 ranges: `0.0.0.0/8`, `10.0.0.0/8`, `100.64.0.0/10` (CGNAT, with Alibaba
/// Cloud's metadata address `100.100.100.200`), `127.0.0.0/8`, `169.254.0.0/16`
/// (link-local, with the metadata address `169.254.169.254`), `172.16.0.0/12`,
/// `192.0.0.0/24`, `192.0.2.0/24`, `192.88.99.0/24`, `192.168.0.0/16`, `198.18.0.0/15`,
/// `198.51.100.0/24`, `203.0.113.0/24`, `224.0.0.0/4` (multicast) and `240.0.0.0/4`
/// (reserved, with the broadcast address).
///
/// IPv6 addresses are public only inside the global unicast block `2000::/3`, and not in
/// `2001::/23` (IETF protocol assignments, Teredo, benchmarking), `2001:db8::/32` or
/// `3fff::/20` (documentation), nor in `2002::/16` (6to4) when the IPv4 address it embeds
/// is refused. Everything else (`::`, `::1`, the deprecated IPv4-compatible `::/96`,
/// `64:ff9b:1::/48`, `100::/64`, `fc00::/7` unique local with AWS's `fd00:ec2::254`,
/// `fe80::/10` link-local, `fec0::/10` site-local, `ff00::/8` multicast, and the unassigned
/// space) is refused.
///
/// ```
/// use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
/// use secure_api_runtime::validation::is_public_ip;
/// let ip = |s: &str| s.parse::<IpAddr>().unwrap();
/// assert!(is_public_ip(ip("93.184.216.34")));
/// assert!(is_public_ip(ip("2606:2800:220:1:248:1893:25c8:1946")));
/// assert!(!is_public_ip(ip("10.1.2.3")));
/// assert!(!is_public_ip(ip("::ffff:169.254.169.254")));
/// assert!(!is_public_ip(ip("fd00:ec2::254")));
/// ```
pub fn is_public_ip(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_ipv4(v4),
        IpAddr::V6(v6) => is_public_ipv6(v6),
    }
}

fn is_public_ipv4(ip: Ipv4Addr) -> bool {
    let a = u32::from(ip);
    let within = |net: u32, bits: u32| (a ^ net) >> (32 - bits) == 0;
    let refused: [(u32, u32); 16] = [
        (0x0000_0000, 8),  // 0.0.0.0/8 "this network"
        (0x0A00_0000, 8),  // 10.0.0.0/8 private
        (0x6440_0000, 10), // 100.64.0.0/10 CGNAT
        (0x7F00_0000, 8),  // 127.0.0.0/8 loopback
        (0xA9FE_0000, 16), // 169.254.0.0/16 link-local, cloud metadata
        (0xAC10_0000, 12), // 172.16.0.0/12 private
        (0xC000_0000, 24), // 192.0.0.0/24 IETF protocol assignments
        (0xC000_0200, 24), // 192.0.2.0/24 TEST-NET-1
        (0xC058_6300, 24), // 192.88.99.0/24 6to4 relay anycast (deprecated)
        (0xC0A8_0000, 16), // 192.168.0.0/16 private
        (0xC612_0000, 15), // 198.18.0.0/15 benchmarking
        (0xC633_6400, 24), // 198.51.100.0/24 TEST-NET-2
        (0xCB00_7100, 24), // 203.0.113.0/24 TEST-NET-3
        (0xE000_0000, 4),  // 224.0.0.0/4 multicast
        (0xF000_0000, 4),  // 240.0.0.0/4 reserved, broadcast
        (0x6464_64C8, 32), // 100.100.100.200 Alibaba Cloud metadata (inside CGNAT too)
    ];
    !refused.iter().any(|&(net, bits)| within(net, bits))
}

fn is_public_ipv6(ip: Ipv6Addr) -> bool {
    let a = u128::from(ip);
    let within = |net: u128, bits: u32| (a ^ net) >> (128 - bits) == 0;
    let embedded = |shift: u32| Ipv4Addr::from((a >> shift) as u32);
    // IPv4-mapped ::ffff:a.b.c.d and NAT64 64:ff9b::a.b.c.d reach the IPv4 address.
    if within(0xffff_0000_0000, 96) || within(0x0064_ff9b << 96, 96) {
        return is_public_ipv4(embedded(0));
    }
    if !within(0x2 << 124, 3) {
        // Outside 2000::/3: loopback, unspecified, IPv4-compatible, ULA, link-local,
        // site-local, multicast, discard-only and unassigned space.
        return false;
    }
    if within(0x2001 << 112, 23) || within(0x2001_0db8 << 96, 32) || within(0x3fff << 112, 20) {
        return false;
    }
    if within(0x2002 << 112, 16) {
        // 6to4: 2002:AABB:CCDD::/48 carries AA.BB.CC.DD.
        return is_public_ipv4(embedded(80));
    }
    true
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
    fn deny_keys_are_equal_for_look_alikes() {
        assert_eq!(deny_key("ａｄｍｉｎ"), deny_key("admin"));
        assert_eq!(deny_key("adm\u{200B}in"), deny_key("Admin"));
        assert_eq!(deny_key("\u{430}dmin"), deny_key("admin")); // Cyrillic а
        assert_ne!(deny_key("administrator"), deny_key("admin"));
        let keys = [deny_key("admin"), deny_key("root")];
        assert!(is_denied_key("ＲＯＯＴ", &keys));
        assert!(!is_denied_key("root2", &keys));
    }

    #[test]
    fn nfkc_folds_compatibility_forms() {
        let mut s = String::from("ＡＢＣ\u{FB01}");
        nfkc(&mut s);
        assert_eq!(s, "ABCfi");
    }

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
            "https://b\u{fc}cher.example/",
            "https://xn--bcher-kva.example/",
            // WHATWG reads it as the IPv4 address 1.0.0.127, as `url(public)` then does.
            "http://1.0x7f/",
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
            // Hosts that IDNA refuses: no HTTP client could resolve them (from fuzzing).
            "https://4444444444ht000000000\u{7d6}1l/4pl",
            "https://xn--a.com/",
            "http://n7c.0x",
            "http://a.0x7f/",
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
        let list = DenyList::new(["ädmin"]);
        assert!(list.is_denied("ÄDMIN"));
        assert!(!list.is_denied("ädmins"));
    }

    fn keys(entries: &[&str]) -> Vec<String> {
        entries.iter().map(|e| deny_key(e)).collect()
    }

    #[test]
    fn deny_catches_look_alikes() {
        let list = keys(&["admin", "root", "null", "undefined"]);
        for disguised in [
            "\u{FF41}\u{FF44}\u{FF4D}\u{FF49}\u{FF4E}", // fullwidth ａｄｍｉｎ
            "ＡＤＭＩＮ",                               // fullwidth capitals
            "adm\u{200B}in",                            // zero-width space
            "a\u{00AD}dmin",                            // soft hyphen
            "\u{2060}admin\u{FEFF}",                    // word joiner, BOM
            "\u{0430}dmin",                             // Cyrillic а
            "\u{0430}\u{0501}min",                      // Cyrillic а and ԁ
            "ADMIN",
            "r00t",
            "r\u{043E}\u{043E}t", // Cyrillic о
            "nu11",
            "undef\u{0131}ned", // dotless ı
        ] {
            assert!(is_denied_key(disguised, &list), "{disguised:?} passed");
        }
        for ordinary in [
            "administrator",
            "root2",
            "roots",
            "nulla",
            "defined",
            "adm",
            "",
            "alice",
            "zoë",
            "рут", // Cyrillic "root" spelled phonetically
        ] {
            assert!(!is_denied_key(ordinary, &list), "{ordinary:?} denied");
        }
    }

    #[test]
    fn the_ascii_fast_path_agrees_with_the_key() {
        let list = keys(&["admin", "root", "m1x-e|d", "\"quote\"", "`tick`", "a.b,c;d"]);
        let all_ascii: String = (0u8..128).map(char::from).collect();
        for entry in &list {
            assert!(!is_denied_key(&all_ascii, &[entry]));
        }
        let samples = [
            "admin",
            "ADMIN",
            "adrnin",
            "r00t",
            "ROOT",
            "m1x-e|d",
            "rnlx-eld",
            "MIX-EID",
            "\"quote\"",
            "''quote''",
            "`tick`",
            "a.b,c;d",
            "a.b,c;d ",
            "root\t",
        ];
        for s in samples {
            let expected = list.iter().any(|k| *k == deny_key(s));
            assert_eq!(is_denied_key(s, &list), expected, "{s:?}");
        }
        // Every single ASCII character on its own, against its own key.
        for b in 0u8..128 {
            let s = char::from(b).to_string();
            assert!(is_denied_key(&s, &[deny_key(&s)]), "{b:#x}");
        }
    }

    #[test]
    fn long_keys_and_long_lists() {
        let long = "x".repeat(100);
        assert!(is_denied_key(&long.to_uppercase(), &[deny_key(&long)]));
        assert!(!is_denied_key(&long[1..], &[deny_key(&long)]));
        assert!(!is_denied_key("x", &[] as &[&str]));
        let many: Vec<String> = (0..70).map(|i| deny_key(&format!("user{i}"))).collect();
        assert!(is_denied_key("USER69", &many));
        assert!(is_denied_key("user\u{200B}0", &many));
        assert!(!is_denied_key("user70", &many));
        assert!(is_denied_key("USER63", &many[..64]));
        assert!(!is_denied_key("user64", &many[..64]));
    }

    #[test]
    fn nfkc_folds_compatibility_forms_in_place() {
        let mut s =
            String::from("\u{FF41}\u{FF44}\u{FF4D}\u{FF49}\u{FF4E} \u{FB01} \u{2460} \u{210C}");
        nfkc(&mut s);
        assert_eq!(s, "admin fi 1 H");
        let mut composed = String::from("e\u{301}");
        nfkc(&mut composed);
        assert_eq!(composed, "\u{e9}");
        let mut kept = String::with_capacity(16);
        kept.push_str("café");
        let ptr = kept.as_ptr();
        nfkc(&mut kept);
        assert_eq!((kept.as_str(), kept.as_ptr()), ("café", ptr));
    }

    #[test]
    fn public_urls_pass() {
        for good in [
            "https://example.com/hook",
            "https://EXAMPLE.com:8443/a?b#c",
            "http://93.184.216.34/",
            "https://[2606:2800:220:1:248:1893:25c8:1946]/",
            "https://[::ffff:93.184.216.34]/",
            "https://[64:ff9b::5db8:d822]/",
            "https://[2002:5db8:d822::1]/",
            "https://bücher.de/",
            "https://localhost.example.com/",
            "https://internal.example.com/",
            "https://8.8.8.8/",
            "https://1.1.1.1/",
        ] {
            assert!(is_public_url(good), "{good:?} refused");
        }
    }

    #[test]
    fn private_and_special_hosts_are_refused_in_every_disguise() {
        for bad in [
            // loopback and its numeric disguises
            "http://127.0.0.1/",
            "http://127.255.255.254/",
            "http://0x7f000001/",
            "http://0x7F.0x0.0x0.0x1/",
            "http://2130706433/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://127.0.1/",
            "http://0x7f.1/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:7f00:1]/",
            "http://[0:0:0:0:0:ffff:127.0.0.1]/",
            "http://[::127.0.0.1]/",
            "http://[64:ff9b::127.0.0.1]/",
            "http://[2002:7f00:1::]/",
            // unspecified, broadcast, reserved
            "http://0.0.0.0/",
            "http://0/",
            "http://[::]/",
            "http://255.255.255.255/",
            "http://240.0.0.1/",
            // private, CGNAT, link-local, multicast
            "http://10.0.0.7:6379/",
            "http://172.16.0.1/",
            "http://172.31.255.255/",
            "http://192.168.1.1/",
            "http://100.64.0.1/",
            "http://100.127.255.255/",
            "http://169.254.0.1/",
            "http://224.0.0.1/",
            "http://[fc00::1]/",
            "http://[fd12:3456::1]/",
            "http://[fe80::1]/",
            "http://[fec0::1]/",
            "http://[ff02::1]/",
            // documentation, benchmarking, IETF blocks
            "http://192.0.2.1/",
            "http://198.51.100.1/",
            "http://203.0.113.1/",
            "http://198.18.0.1/",
            "http://198.19.255.255/",
            "http://192.0.0.8/",
            "http://192.88.99.1/",
            "http://[2001:db8::1]/",
            "http://[3fff::1]/",
            "http://[2001::1]/",
            "http://[2001:2::1]/",
            "http://[100::1]/",
            // cloud metadata
            "http://169.254.169.254/latest/meta-data/",
            "http://[fd00:ec2::254]/",
            "http://100.100.100.200/",
            "http://metadata.google.internal/computeMetadata/v1/",
            "http://METADATA.GOOGLE.INTERNAL/",
            "http://metadata/",
            "http://instance-data/",
            "http://[::ffff:169.254.169.254]/",
            "http://0xa9fea9fe/",
            "http://2852039166/",
            // localhost names
            "http://localhost/",
            "http://LocalHost:8080/",
            "http://localhost./",
            "http://api.localhost/",
            "http://api.localhost./",
            "http://localhost.localdomain/",
            "http://printer.local/",
            "http://router.lan/",
            "http://nas.home.arpa/",
            "http://x.test/",
            "http://\u{FF4C}\u{FF4F}\u{FF43}\u{FF41}\u{FF4C}\u{FF48}\u{FF4F}\u{FF53}\u{FF54}/",
            // percent-encoded hosts
            "http://%6c%6f%63%61%6c%68%6f%73%74/",
            "http://%31%32%37.0.0.1/",
            // not URLs the `url` rule accepts
            "ftp://example.com/",
            "https://user@example.com/",
        ] {
            assert!(!is_public_url(bad), "{bad:?} accepted");
        }
    }

    #[test]
    fn the_host_check_reads_hosts_like_a_client() {
        // Forms the `url` syntax rule already refuses are refused by the host check alone.
        for bad in [
            "http://2130706433/",
            "http://0177.0.0.1/",
            "http://127.1/",
            "http://%6c%6f%63%61%6c%68%6f%73%74/",
            "http://localhost./",
            "http://127.0.0.1\\@example.com/",
        ] {
            assert!(!has_public_host(bad), "{bad:?} accepted");
        }
        assert!(has_public_host("http://example.com./"));
    }

    #[test]
    fn lengths_count_chars() {
        assert_eq!("ü".length(), 1);
        assert!(length_within("abc", 3, 3));
        assert!(length_within(&vec![1, 2], 0, 2));
        assert!(!in_range(&f64::NAN, Some(&0.0), Some(&1.0)));
    }
}
