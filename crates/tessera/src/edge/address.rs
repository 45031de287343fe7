//! The end user's address that logins are throttled by (SPEC §2), from the TCP peer and, behind
//! trusted proxies, `x-forwarded-for` (gRPC metadata and HTTP headers are the same map).
use std::net::IpAddr;

use http::HeaderMap;
use ipnet::{IpNet, Ipv6Net};

/// The end user's address that logins are throttled by (SPEC §2): the TCP peer's, or, when
/// the peer is one of the `trusted` proxies, the right-most `x-forwarded-for` entry that no
/// trusted proxy added (entries to its left are the client's to write, so they prove nothing).
/// An IPv6 address stands for its /64, which one host can fill at will.
pub fn end_user_address(
    peer: Option<IpAddr>,
    headers: &HeaderMap,
    trusted: &[IpNet],
) -> Option<String> {
    let peer = peer?.to_canonical();
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if trusted_peer(Some(peer), trusted)
        && let Some(client) = forwarded_client(headers, is_trusted)
    {
        return Some(client);
    }
    Some(throttle_key(peer))
}

/// Whether the TCP peer is one of the `trusted` proxies (`TESSERA_TRUSTED_PROXIES`): then its
/// `x-forwarded-for` is believed, and its W3C trace context adopted.
pub fn trusted_peer(peer: Option<IpAddr>, trusted: &[IpNet]) -> bool {
    peer.is_some_and(|peer| {
        let peer = peer.to_canonical();
        trusted.iter().any(|net| net.contains(&peer))
    })
}

/// The end user behind trusted proxies: read right to left (the proxies appended their
/// entries there), the first entry that is no trusted proxy. Entries to its left are the
/// client's to write and are never read. `ip:port`, `[v6]:port` and zone ids are understood; an
/// entry that is no address at all keys the attempt by its own text (so that junk shares a
/// bucket with junk, never with the proxy). `None` when every entry is a trusted proxy.
fn forwarded_client(headers: &HeaderMap, is_trusted: impl Fn(&IpAddr) -> bool) -> Option<String> {
    let mut entries = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let text = String::from_utf8_lossy(value.as_bytes()).into_owned();
        entries.extend(text.split(',').map(|e| e.trim().to_owned()));
    }
    for entry in entries.iter().rev().filter(|e| !e.is_empty()) {
        match forwarded_address(entry) {
            Some(ip) if is_trusted(&ip) => continue,
            Some(ip) => return Some(throttle_key(ip)),
            None => return Some(entry.chars().take(MAX_FORWARDED_TOKEN).collect()),
        }
    }
    None
}

/// The longest text of an unreadable `x-forwarded-for` entry kept as a throttle key.
const MAX_FORWARDED_TOKEN: usize = 64;

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `2001:db8::1`, `[2001:db8::1]:443`,
/// `fe80::1%eth0`.
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let host = if let Some(rest) = entry.strip_prefix('[') {
        rest.split(']').next()?
    } else if entry.matches(':').count() == 1 {
        entry.split(':').next()?
    } else {
        entry
    };
    let host = host.split('%').next()?;
    host.parse::<IpAddr>().ok().map(|ip| ip.to_canonical())
}

fn throttle_key(address: IpAddr) -> String {
    match address {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => Ipv6Net::new(v6, 64)
            .map(|net| net.trunc().to_string())
            .unwrap_or_else(|_| v6.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn forwarded(value: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert("x-forwarded-for", value.parse().expect("header"));
        headers
    }

    #[test]
    fn an_untrusted_caller_is_throttled_by_its_own_address_whatever_it_forwards() {
        let peer = Some("198.51.100.9".parse().expect("ip"));
        let spoofed = forwarded("203.0.113.7");
        assert_eq!(
            end_user_address(peer, &spoofed, &[]).as_deref(),
            Some("198.51.100.9")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_right_most_untrusted_entry_counts() {
        let trusted = crate::config::trusted_proxies("10.0.0.0/8, 127.0.0.1").expect("nets");
        let peer = Some("127.0.0.1".parse().expect("ip"));
        // The client wrote the left-most entry itself: it proves nothing.
        let chain = forwarded("1.2.3.4, 203.0.113.7, 10.0.0.5");
        assert_eq!(
            end_user_address(peer, &chain, &trusted).as_deref(),
            Some("203.0.113.7")
        );
        // Nobody but proxies in the chain: the peer is the caller.
        let all_trusted = forwarded("10.1.1.1, 10.0.0.7");
        assert_eq!(
            end_user_address(peer, &all_trusted, &trusted).as_deref(),
            Some("127.0.0.1")
        );
        // Junk to the left of the real address is never read.
        let junk_left = forwarded("junk, 203.0.113.7:5678, 10.0.0.5");
        assert_eq!(
            end_user_address(peer, &junk_left, &trusted).as_deref(),
            Some("203.0.113.7")
        );
        // Junk where the client should be keys by itself, never by the proxy.
        let junk = forwarded("unknown, 10.0.0.5");
        assert_eq!(
            end_user_address(peer, &junk, &trusted).as_deref(),
            Some("unknown")
        );
        for (entry, key) in [
            ("[2001:db8::1]:443", "2001:db8::/64"),
            ("fe80::1%eth0", "fe80::/64"),
            ("198.51.100.5:80", "198.51.100.5"),
        ] {
            let value = forwarded(&format!("{entry}, 10.0.0.5"));
            assert_eq!(
                end_user_address(peer, &value, &trusted).as_deref(),
                Some(key)
            );
        }
    }

    #[test]
    fn an_ipv6_address_stands_for_its_64() {
        let peer = Some("2001:db8:1:2:aaaa:bbbb:cccc:dddd".parse().expect("ip"));
        assert_eq!(
            end_user_address(peer, &HeaderMap::new(), &[]).as_deref(),
            Some("2001:db8:1:2::/64")
        );
        let mapped = Some("::ffff:192.0.2.1".parse().expect("ip"));
        assert_eq!(
            end_user_address(mapped, &HeaderMap::new(), &[]).as_deref(),
            Some("192.0.2.1")
        );
    }
}
