//! Who is asking: the client IP behind trusted proxies, and the keys rate limits are kept
//! under.
//!
//! `Forwarded` / `X-Forwarded-For` are honoured only when the connection comes from a
//! configured trusted proxy. The chain is walked from the right (the hop nearest to us) to
//! the first address that is not a trusted proxy: that is the client. Hops to the left of it
//! were written by the client and are ignored, so a spoofed header changes nothing.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// An IP network in CIDR notation (`10.0.0.0/8`, `2001:db8::/32`); a bare address is a
/// single host.
///
/// ```
/// use secure_api_runtime::client::IpNet;
/// let net: IpNet = "10.0.0.0/8".parse().unwrap();
/// assert!(net.contains("10.1.2.3".parse().unwrap()));
/// assert!(!net.contains("11.0.0.1".parse().unwrap()));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpNet {
    addr: IpAddr,
    prefix: u8,
}

/// A malformed network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpNetParseError;

impl fmt::Display for IpNetParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("expected an IP address or network such as `10.0.0.0/8`")
    }
}

impl std::error::Error for IpNetParseError {}

impl IpNet {
    /// The network of `addr` with `prefix` bits; `None` if the prefix is too long.
    pub fn new(addr: IpAddr, prefix: u8) -> Option<IpNet> {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (prefix <= max).then(|| IpNet {
            addr: mask(addr, prefix),
            prefix,
        })
    }

    /// Whether `ip` is in the network. IPv4-mapped IPv6 addresses match IPv4 networks.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.prefix) == self.addr
    }
}

impl FromStr for IpNet {
    type Err = IpNetParseError;

    fn from_str(s: &str) -> Result<IpNet, IpNetParseError> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr = canonical(addr.trim().parse().map_err(|_| IpNetParseError)?);
        let prefix = match prefix {
            Some(p) => p.trim().parse().map_err(|_| IpNetParseError)?,
            None if addr.is_ipv4() => 32,
            None => 128,
        };
        IpNet::new(addr, prefix).ok_or(IpNetParseError)
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) as IPv4.
pub(crate) fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => ip,
        },
        v4 => v4,
    }
}

fn mask(ip: IpAddr, prefix: u8) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let bits = u32::from(v4);
            let m = if prefix == 0 {
                0
            } else {
                u32::MAX << (32 - u32::from(prefix.min(32)))
            };
            IpAddr::V4(Ipv4Addr::from(bits & m))
        }
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let m = if prefix == 0 {
                0
            } else {
                u128::MAX << (128 - u32::from(prefix.min(128)))
            };
            IpAddr::V6(Ipv6Addr::from(bits & m))
        }
    }
}

/// Which header trusted proxies use to pass the client address on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ForwardedHeader {
    /// `X-Forwarded-For: client, proxy1, proxy2`.
    #[default]
    XForwardedFor,
    /// RFC 7239 `Forwarded: for=client;proto=https, for=proxy1`.
    Forwarded,
}

impl ForwardedHeader {
    /// The header's name (lowercase).
    pub fn name(&self) -> &'static str {
        match self {
            ForwardedHeader::XForwardedFor => "x-forwarded-for",
            ForwardedHeader::Forwarded => "forwarded",
        }
    }

    /// The header's name as an actix `HeaderName` (no parsing per request).
    pub fn header_name(&self) -> actix_web::http::header::HeaderName {
        use actix_web::http::header::{FORWARDED, HeaderName, X_FORWARDED_FOR};
        const XFF: HeaderName = X_FORWARDED_FOR;
        const FWD: HeaderName = FORWARDED;
        match self {
            ForwardedHeader::XForwardedFor => XFF,
            ForwardedHeader::Forwarded => FWD,
        }
    }
}

/// How the client IP is found.
///
/// ```
/// use secure_api_runtime::client::ClientIpConfig;
/// let config = ClientIpConfig::default().trust("10.0.0.0/8".parse().unwrap());
/// let peer = "10.0.0.2".parse().unwrap();
/// // The client wrote "6.6.6.6"; our proxy appended the address it saw.
/// let ip = config.resolve(peer, ["6.6.6.6, 203.0.113.9"]);
/// assert_eq!(ip, "203.0.113.9".parse::<std::net::IpAddr>().unwrap());
/// // The same header from an untrusted peer is ignored.
/// let ip = config.resolve("198.51.100.1".parse().unwrap(), ["6.6.6.6"]);
/// assert_eq!(ip, "198.51.100.1".parse::<std::net::IpAddr>().unwrap());
/// ```
#[derive(Debug, Clone)]
pub struct ClientIpConfig {
    trusted: Vec<IpNet>,
    header: ForwardedHeader,
    max_hops: usize,
    ipv6_prefix: u8,
}

impl Default for ClientIpConfig {
    fn default() -> Self {
        ClientIpConfig {
            trusted: Vec::new(),
            header: ForwardedHeader::default(),
            max_hops: 8,
            ipv6_prefix: 64,
        }
    }
}

impl ClientIpConfig {
    /// Trusts a proxy network: its forwarding header is believed.
    pub fn trust(mut self, net: IpNet) -> Self {
        self.trusted.push(net);
        self
    }

    /// Which header the trusted proxies write.
    pub fn header(mut self, header: ForwardedHeader) -> Self {
        self.header = header;
        self
    }

    /// How many trusted hops are walked at most (default 8).
    pub fn max_hops(mut self, hops: usize) -> Self {
        self.max_hops = hops;
        self
    }

    /// The prefix length IPv6 clients are grouped by (default 64: one customer's network).
    pub fn ipv6_prefix(mut self, prefix: u8) -> Self {
        self.ipv6_prefix = prefix.min(128);
        self
    }

    /// The forwarding header consulted.
    pub fn forwarded_header(&self) -> ForwardedHeader {
        self.header
    }

    /// Whether any proxy is trusted (if not, forwarding headers are never read).
    pub fn has_trusted_proxies(&self) -> bool {
        !self.trusted.is_empty()
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.trusted.iter().any(|n| n.contains(ip))
    }

    /// The client address for a connection from `peer` carrying the given values of the
    /// forwarding header (in the order they appear), canonicalised and grouped by the IPv6
    /// prefix.
    ///
    /// The values are read as bytes, hop by hop: a hop that is not readable text (a client
    /// can send any byte) is an unknown hop, and the hops to its right, which our proxies
    /// appended, still count.
    pub fn resolve<I>(&self, peer: IpAddr, header_values: I) -> IpAddr
    where
        I: IntoIterator,
        I::Item: AsRef<[u8]>,
    {
        let client = canonical(peer);
        if !self.is_trusted(client) {
            return self.group(client);
        }
        // One header line (the usual case) is walked without collecting the lines.
        let mut lines = header_values.into_iter();
        let client = match (lines.next(), lines.next()) {
            (None, _) => client,
            (Some(only), None) => self.walk(client, std::slice::from_ref(&only)),
            (Some(a), Some(b)) => {
                let all: Vec<I::Item> = [a, b].into_iter().chain(lines).collect();
                self.walk(client, &all)
            }
        };
        self.group(client)
    }

    /// From a trusted `client`, the header lines in order, then their hops from the right
    /// (the nearest hop first), for as long as the hop we are at is trusted.
    fn walk<V: AsRef<[u8]>>(&self, mut client: IpAddr, lines: &[V]) -> IpAddr {
        let hops = lines
            .iter()
            .rev()
            .flat_map(|v| v.as_ref().rsplit(|&b| b == b','));
        for hop in hops.take(self.max_hops) {
            if !self.is_trusted(client) {
                break;
            }
            let parsed = std::str::from_utf8(hop)
                .ok()
                .and_then(|hop| match self.header {
                    ForwardedHeader::XForwardedFor => parse_node(hop.trim()),
                    ForwardedHeader::Forwarded => forwarded_for(hop),
                });
            match parsed {
                Some(ip) => client = canonical(ip),
                // An unknown, obfuscated or unreadable hop: stop at the last address we
                // know.
                None => break,
            }
        }
        client
    }

    /// The address as rate limits, idempotency scopes and logs see it: IPv4-mapped IPv6
    /// addresses (`::ffff:a.b.c.d`, as a dual-stack socket reports IPv4 peers) as IPv4,
    /// IPv6 masked to the configured prefix.
    ///
    /// ```
    /// use secure_api_runtime::client::ClientIpConfig;
    /// let config = ClientIpConfig::default();
    /// let a = config.group("::ffff:192.0.2.1".parse().unwrap());
    /// let b = config.group("::ffff:192.0.2.2".parse().unwrap());
    /// assert_eq!(a, "192.0.2.1".parse::<std::net::IpAddr>().unwrap());
    /// assert_ne!(a, b);
    /// ```
    pub fn group(&self, ip: IpAddr) -> IpAddr {
        match canonical(ip) {
            v6 @ IpAddr::V6(_) => mask(v6, self.ipv6_prefix),
            v4 => v4,
        }
    }
}

/// `1.2.3.4`, `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]:80`, optionally quoted.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim().trim_matches('"');
    if let Ok(ip) = node.parse() {
        return Some(ip);
    }
    if let Some(rest) = node.strip_prefix('[') {
        return rest.split_once(']')?.0.parse().ok();
    }
    let (host, port) = node.rsplit_once(':')?;
    port.parse::<u16>().ok()?;
    host.parse::<Ipv4Addr>().ok().map(IpAddr::V4)
}

/// The `for=` node of one RFC 7239 element (`for=1.2.3.4;proto=https`).
fn forwarded_for(element: &str) -> Option<IpAddr> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        if name.trim().eq_ignore_ascii_case("for") {
            parse_node(value)
        } else {
            None
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn networks() {
        let v6: IpNet = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains(ip("2001:db8:ffff::1")));
        assert!(!v6.contains(ip("2001:db9::1")));
        let host: IpNet = "192.0.2.7".parse().unwrap();
        assert!(host.contains(ip("::ffff:192.0.2.7")));
        assert!(!host.contains(ip("192.0.2.8")));
        assert!("10.0.0.0/33".parse::<IpNet>().is_err());
        assert!("nonsense".parse::<IpNet>().is_err());
        let all: IpNet = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("8.8.8.8")));
    }

    #[test]
    fn untrusted_peers_cannot_spoof() {
        let config = ClientIpConfig::default().trust("10.0.0.0/8".parse().unwrap());
        assert_eq!(
            config.resolve(ip("203.0.113.5"), ["10.0.0.1"]),
            ip("203.0.113.5")
        );
        let no_proxies = ClientIpConfig::default();
        assert_eq!(
            no_proxies.resolve(ip("10.0.0.1"), ["1.1.1.1"]),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn chains_are_walked_from_the_right_to_the_first_untrusted_hop() {
        let config = ClientIpConfig::default()
            .trust("10.0.0.0/8".parse().unwrap())
            .trust("192.168.0.0/16".parse().unwrap());
        // client-written junk, the real client, then two of our proxies.
        let xff = "6.6.6.6, 198.51.100.7, 192.168.1.1, 10.0.0.9";
        assert_eq!(config.resolve(ip("10.0.0.1"), [xff]), ip("198.51.100.7"));
        // Split across header lines.
        assert_eq!(
            config.resolve(ip("10.0.0.1"), ["6.6.6.6, 198.51.100.7", "192.168.1.1"]),
            ip("198.51.100.7")
        );
        // Garbage from a trusted hop: stop at the last known address.
        assert_eq!(
            config.resolve(ip("10.0.0.1"), ["198.51.100.7, unknown"]),
            ip("10.0.0.1")
        );
        // Ports and brackets.
        assert_eq!(
            config.resolve(ip("10.0.0.1"), ["198.51.100.7:4711"]),
            ip("198.51.100.7")
        );
    }

    #[test]
    fn an_unreadable_hop_does_not_hide_the_hops_to_its_right() {
        let config = ClientIpConfig::default().trust("10.0.0.0/8".parse().unwrap());
        // The client wrote a non-ASCII byte; our proxy appended the address it saw.
        let line: &[u8] = b"\xff, 203.0.113.9";
        assert_eq!(config.resolve(ip("10.0.0.1"), [line]), ip("203.0.113.9"));
        // The same split over two header lines.
        let lines: [&[u8]; 2] = [b"\xff\xfe", b"203.0.113.9"];
        assert_eq!(config.resolve(ip("10.0.0.1"), lines), ip("203.0.113.9"));
        // An unreadable hop in the middle of trusted hops is an unknown hop: the walk stops
        // at the last address known, never skipping to a client-written one further left.
        let line: &[u8] = b"6.6.6.6, \xff, 10.0.0.7";
        assert_eq!(config.resolve(ip("10.0.0.1"), [line]), ip("10.0.0.7"));
        let forwarded = ClientIpConfig::default()
            .trust("10.0.0.0/8".parse().unwrap())
            .header(ForwardedHeader::Forwarded);
        let line: &[u8] = b"for=\"\xc3\x28\", for=198.51.100.4;proto=https";
        assert_eq!(
            forwarded.resolve(ip("10.0.0.1"), [line]),
            ip("198.51.100.4")
        );
    }

    #[test]
    fn ipv4_mapped_peers_are_canonicalised_before_grouping() {
        let config = ClientIpConfig::default();
        let a = config.resolve(ip("::ffff:127.0.0.2"), [""; 0]);
        let b = config.resolve(ip("::ffff:127.0.0.3"), [""; 0]);
        assert_eq!(a, ip("127.0.0.2"));
        assert_eq!(b, ip("127.0.0.3"));
        assert_eq!(config.group(ip("::ffff:192.0.2.1")), ip("192.0.2.1"));
        // Behind a trusted proxy too, whether the proxy or the hop is mapped.
        let proxied = ClientIpConfig::default().trust("10.0.0.0/8".parse().unwrap());
        assert_eq!(
            proxied.resolve(ip("::ffff:10.0.0.1"), ["::ffff:198.51.100.9"]),
            ip("198.51.100.9")
        );
    }

    #[test]
    fn hop_cap_bounds_the_walk() {
        let config = ClientIpConfig::default()
            .trust("10.0.0.0/8".parse().unwrap())
            .max_hops(2);
        let xff = "198.51.100.7, 10.0.0.3, 10.0.0.2";
        assert_eq!(config.resolve(ip("10.0.0.1"), [xff]), ip("10.0.0.3"));
    }

    #[test]
    fn rfc7239_forwarded() {
        let config = ClientIpConfig::default()
            .trust("10.0.0.0/8".parse().unwrap())
            .header(ForwardedHeader::Forwarded);
        let value = r#"for=6.6.6.6, for="[2001:db8:cafe::17]:4711";proto=https, for=10.0.0.5"#;
        assert_eq!(
            config.resolve(ip("10.0.0.1"), [value]),
            ip("2001:db8:cafe::")
        );
        assert_eq!(
            config.resolve(ip("10.0.0.1"), ["for=_hidden, for=10.0.0.5"]),
            ip("10.0.0.5")
        );
    }

    #[test]
    fn ipv6_is_grouped_by_prefix() {
        let config = ClientIpConfig::default();
        let a = config.resolve(ip("2001:db8:1:2:aaaa::1"), [""; 0]);
        let b = config.resolve(ip("2001:db8:1:2:bbbb::2"), [""; 0]);
        let c = config.resolve(ip("2001:db8:1:3::1"), [""; 0]);
        assert_eq!(a, b);
        assert_ne!(a, c);
        let per_host = ClientIpConfig::default().ipv6_prefix(128);
        assert_ne!(
            per_host.resolve(ip("2001:db8::1"), [""; 0]),
            per_host.resolve(ip("2001:db8::2"), [""; 0])
        );
    }
}
