//! The client address a request comes from, as the per-address limits see
//! it: the TCP peer, or, when the peer is a trusted proxy, the address it
//! forwarded in `X-Forwarded-For`; IPv6 addresses grouped by /64. It must not
//! count or limit anything itself (see the `limits` module).
//!
//! # Trusted proxies
//!
//! `X-Forwarded-For` is read only when the TCP peer is inside one of
//! [`ServerConfig::trusted_proxies`](super::ServerConfig::trusted_proxies);
//! from anyone else the header is ignored (a client can write any address
//! there). The chain is read from the right (the hop nearest the server):
//! trusted proxies are skipped, and the first address that is not a trusted
//! proxy is the client. When every hop is trusted the left-most one is the
//! client; when a hop does not parse as an IP address, the reading stops and
//! the last trusted hop before it is the client (nothing to its left can be
//! believed).
//!
//! # Grouping
//!
//! An IPv6 host usually holds a whole /64, so one attacker could take a new
//! address per request: IPv6 addresses are grouped by their /64 prefix (the
//! interface id is zeroed). IPv4-mapped IPv6 addresses (`::ffff:a.b.c.d`)
//! count as the IPv4 address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use actix_web::http::header::HeaderMap;
use ipnet::IpNet;

/// The header a reverse proxy appends the client's address to.
const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The address limits count a request under when it has no peer address
/// (never the case on TCP): all such requests share it.
const NO_PEER: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

/// A client address as the per-address limits key it: an IPv4 address, or
/// an IPv6 /64 prefix (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct ClientKey(IpAddr);

impl ClientKey {
    /// Groups `ip`: IPv4 (also IPv4-mapped IPv6) as is, IPv6 by /64.
    pub(crate) fn new(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self(IpAddr::V4(v4)),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => Self(IpAddr::V4(v4)),
                None => {
                    let prefix = u128::from(v6) & !u128::from(u64::MAX);
                    Self(IpAddr::V6(Ipv6Addr::from(prefix)))
                }
            },
        }
    }
}

impl std::fmt::Display for ClientKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            IpAddr::V4(v4) => write!(f, "{v4}"),
            IpAddr::V6(v6) => write!(f, "{v6}/64"),
        }
    }
}

/// The client behind a request from `peer` with these `headers`, given the
/// trusted proxies (see the module docs).
fn client_ip(peer: Option<SocketAddr>, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let Some(peer) = peer.map(|p| p.ip()) else {
        return NO_PEER;
    };
    if !is_trusted(peer, trusted) {
        return peer;
    }
    let mut client = peer;
    // Several header lines form one list, in order.
    let hops = headers
        .get_all(X_FORWARDED_FOR)
        .flat_map(|value| value.to_str().unwrap_or("").split(','))
        .collect::<Vec<_>>();
    for hop in hops.into_iter().rev() {
        let Some(ip) = parse_hop(hop) else {
            // Garbage: the trusted hop that wrote it is as far as we can see.
            break;
        };
        client = ip;
        if !is_trusted(ip, trusted) {
            break;
        }
    }
    client
}

/// The client key of a request (its [`client_ip`], grouped).
pub(crate) fn client_key(
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    trusted: &[IpNet],
) -> ClientKey {
    ClientKey::new(client_ip(peer, headers, trusted))
}

fn is_trusted(ip: IpAddr, trusted: &[IpNet]) -> bool {
    let ip = canonical(ip);
    trusted.iter().any(|net| net.contains(&ip))
}

/// IPv4-mapped IPv6 as IPv4, so `127.0.0.1/32` matches `::ffff:127.0.0.1`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        IpAddr::V4(_) => ip,
    }
}

/// One `X-Forwarded-For` entry: an IP address, also with a port
/// (`1.2.3.4:5678`, `[::1]:5678`) as some proxies write it.
fn parse_hop(hop: &str) -> Option<IpAddr> {
    let hop = hop.trim();
    hop.parse::<IpAddr>()
        .or_else(|_| hop.parse::<SocketAddr>().map(|s| s.ip()))
        .ok()
        .map(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(values: &[&str]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for value in values {
            map.append(
                HeaderName::from_static(X_FORWARDED_FOR),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn peer(ip: &str) -> Option<SocketAddr> {
        Some(SocketAddr::new(ip.parse().unwrap(), 4000))
    }

    fn nets(list: &[&str]) -> Vec<IpNet> {
        list.iter().map(|n| n.parse().unwrap()).collect()
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn the_header_counts_only_from_a_trusted_peer() {
        let trusted = nets(&["10.0.0.0/8"]);
        let xff = headers(&["203.0.113.7"]);
        assert_eq!(
            client_ip(peer("198.51.100.1"), &xff, &trusted),
            ip("198.51.100.1")
        );
        assert_eq!(
            client_ip(peer("10.1.2.3"), &xff, &trusted),
            ip("203.0.113.7")
        );
        assert_eq!(client_ip(peer("10.1.2.3"), &xff, &[]), ip("10.1.2.3"));
        assert_eq!(client_ip(None, &xff, &trusted), NO_PEER);
    }

    #[test]
    fn the_right_most_untrusted_hop_is_the_client() {
        let trusted = nets(&["10.0.0.0/8", "192.0.2.0/24"]);
        // The client forged the left-most entry; the proxies appended the rest.
        let xff = headers(&["1.1.1.1, 203.0.113.7", "192.0.2.5"]);
        assert_eq!(
            client_ip(peer("10.0.0.1"), &xff, &trusted),
            ip("203.0.113.7")
        );
        // Every hop trusted: the left-most.
        let xff = headers(&["192.0.2.9, 10.0.0.2"]);
        assert_eq!(client_ip(peer("10.0.0.1"), &xff, &trusted), ip("192.0.2.9"));
        // Garbage stops the reading at the last trusted hop.
        let xff = headers(&["203.0.113.7, unknown, 192.0.2.5"]);
        assert_eq!(client_ip(peer("10.0.0.1"), &xff, &trusted), ip("192.0.2.5"));
        // Ports and brackets.
        let xff = headers(&["[2001:db8::1]:443, 203.0.113.8:1234"]);
        assert_eq!(
            client_ip(peer("10.0.0.1"), &xff, &trusted),
            ip("203.0.113.8")
        );
        // No header: the peer.
        assert_eq!(
            client_ip(peer("10.0.0.1"), &HeaderMap::new(), &trusted),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn mapped_addresses_match_ipv4_networks() {
        let trusted = nets(&["127.0.0.1/32"]);
        let xff = headers(&["203.0.113.7"]);
        assert_eq!(
            client_ip(peer("::ffff:127.0.0.1"), &xff, &trusted),
            ip("203.0.113.7")
        );
    }

    #[test]
    fn ipv6_is_grouped_by_64() {
        let a = ClientKey::new(ip("2001:db8:1:2:aaaa::1"));
        let b = ClientKey::new(ip("2001:db8:1:2:bbbb::2"));
        let c = ClientKey::new(ip("2001:db8:1:3::1"));
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert_eq!(a.to_string(), "2001:db8:1:2::/64");
        assert_eq!(
            ClientKey::new(ip("::ffff:1.2.3.4")),
            ClientKey::new(ip("1.2.3.4"))
        );
        assert_eq!(ClientKey::new(ip("1.2.3.4")).to_string(), "1.2.3.4");
    }
}
