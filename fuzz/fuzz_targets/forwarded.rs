//! The client address behind trusted proxies, from raw `X-Forwarded-For` and `Forwarded`
//! header bytes.
//!
//! Properties: no panic; an untrusted peer is its own client whatever it sends (spoofing);
//! the client is the peer or an address written in the header; the answer does not depend
//! on how the same hops are split across header lines.
#![no_main]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use secure_api_runtime::client::{ClientIpConfig, ForwardedHeader};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let header = if flags & 1 == 0 {
        ForwardedHeader::XForwardedFor
    } else {
        ForwardedHeader::Forwarded
    };
    let config = ClientIpConfig::default()
        .trust("10.0.0.0/8".parse().expect("a network"))
        .trust("fd00::/8".parse().expect("a network"))
        .header(header)
        .max_hops(usize::from(flags >> 4) + 1)
        .ipv6_prefix(if flags & 2 == 0 { 128 } else { 64 });
    // Header lines are separated by newlines in the input (a line itself may hold any other
    // byte, as a client can send).
    let lines: Vec<&[u8]> = rest.split(|&b| b == b'\n').collect();

    let untrusted = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));
    assert_eq!(
        config.resolve(untrusted, &lines),
        untrusted,
        "an untrusted peer chose its address"
    );

    let proxy = if flags & 4 == 0 {
        IpAddr::V4(Ipv4Addr::new(10, 1, 2, 3))
    } else {
        IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1))
    };
    let client = config.resolve(proxy, &lines);
    assert_eq!(client, config.group(client), "the answer is grouped");

    // The same hops on one line: the same client.
    let joined = lines.join(&b","[..]);
    if lines.len() > 1 && !joined.is_empty() {
        assert_eq!(
            config.resolve(proxy, [&joined[..]]),
            client,
            "splitting the hops across lines changed the client"
        );
    }

    // The client is the proxy itself or an address the header names.
    if client != config.group(proxy) {
        let text = String::from_utf8_lossy(rest).to_ascii_lowercase();
        let named = match client {
            // Or written as an IPv4-mapped IPv6 address, in any of its forms.
            IpAddr::V4(v4) => text.contains(&v4.to_string()) || text.contains(':'),
            // IPv6 is written in many forms; grouping may also have masked it.
            IpAddr::V6(_) => text.contains(':'),
        };
        assert!(named, "a client address from nowhere: {client}");
    }
});
