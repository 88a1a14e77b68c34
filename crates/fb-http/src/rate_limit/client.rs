//! Who a request comes from: the socket peer, or, behind proxies we trust, the address they
//! report in `X-Forwarded-For`.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::str::FromStr;

use axum::extract::FromRequestParts;
use axum::http::HeaderMap;
use axum::http::request::Parts;

const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// The client a request is counted against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientAddress {
    Known(IpAddr),
    /// No socket peer is known: requests handed to the router in-process (tests, tools).
    Unknown,
}

impl ClientAddress {
    /// The bucket key of this client. An IPv6 client is counted by its /64: one host usually
    /// holds a whole /64 and could otherwise take a fresh address per request.
    pub fn bucket(&self) -> String {
        match self {
            ClientAddress::Known(IpAddr::V4(ip)) => ip.to_string(),
            ClientAddress::Known(IpAddr::V6(ip)) => {
                let network = Ipv6Addr::from(ip.to_bits() & (u128::MAX << 64));
                format!("{network}/64")
            }
            ClientAddress::Unknown => "unknown".to_owned(),
        }
    }
}

/// Set on every request by the per-address middleware; `Unknown` if it did not run.
impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(parts
            .extensions
            .get::<ClientAddress>()
            .copied()
            .unwrap_or(ClientAddress::Unknown))
    }
}

/// An address block such as `10.0.0.0/8` or `fd00::/8`; a bare address is a block of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network = IpAddr::from_str(address)
            .map_err(|_| format!("'{text}' is not an address block like 10.0.0.0/8 or fd00::/8"))?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("'{text}': the prefix length must be 0 to {max}"))?,
        };
        Ok(Cidr { network, prefix })
    }
}

impl Cidr {
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                net.to_bits() & mask == ip.to_bits() & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                net.to_bits() & mask == ip.to_bits() & mask
            }
            _ => false,
        }
    }
}

/// The proxies whose `X-Forwarded-For` is believed (`server.trusted_proxies`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Cidr>);

impl TrustedProxies {
    pub fn new(blocks: Vec<Cidr>) -> Self {
        Self(blocks)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|block| block.contains(ip))
    }

    /// The client of a request from `peer` with these headers. `X-Forwarded-For` is read only
    /// when the peer is a trusted proxy, and then from the right: each proxy appends the
    /// address it received the request from, so the right-most address that is not one of
    /// our proxies is the first one that none of them vouches for, i.e. the client. Anything
    /// left of it was written by the client and may be invented.
    pub fn client(&self, peer: Option<IpAddr>, headers: &HeaderMap) -> ClientAddress {
        let Some(peer) = peer.map(|ip| ip.to_canonical()) else {
            return ClientAddress::Unknown;
        };
        if !self.trusts(peer) {
            return ClientAddress::Known(peer);
        }
        // Split the raw bytes, so that one unreadable element (a client can write anything to
        // the left of what our proxies append) spoils only itself, not the whole line.
        let entries: Vec<&str> = headers
            .get_all(X_FORWARDED_FOR)
            .iter()
            .flat_map(|value| value.as_bytes().split(|b| *b == b','))
            .map(|part| std::str::from_utf8(part).unwrap_or(""))
            .collect();
        let mut client = peer;
        for entry in entries.iter().rev() {
            match forwarded_address(entry) {
                Some(ip) if self.trusts(ip) => client = ip,
                Some(ip) => return ClientAddress::Known(ip),
                // Garbage can only come from the part the client wrote: stop at the last
                // address a trusted proxy vouched for.
                None => break,
            }
        }
        ClientAddress::Known(client)
    }
}

/// An `X-Forwarded-For` entry: an address, some proxies add a port (`1.2.3.4:80`, `[::1]:80`).
fn forwarded_address(entry: &str) -> Option<IpAddr> {
    let entry = entry.trim();
    let ip = IpAddr::from_str(entry)
        .ok()
        .or_else(|| SocketAddr::from_str(entry).ok().map(|s| s.ip()))
        .or_else(|| {
            let inner = entry.strip_prefix('[')?.strip_suffix(']')?;
            IpAddr::from_str(inner).ok()
        })?;
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    fn proxies(blocks: &[&str]) -> TrustedProxies {
        TrustedProxies::new(blocks.iter().map(|b| b.parse().unwrap()).collect())
    }

    fn forwarded(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for v in values {
            headers.append(X_FORWARDED_FOR, HeaderValue::from_str(v).unwrap());
        }
        headers
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn known(text: &str) -> ClientAddress {
        ClientAddress::Known(ip(text))
    }

    #[test]
    fn blocks_parse_and_match() {
        let block: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(block.contains(ip("10.1.200.3")));
        assert!(!block.contains(ip("10.2.0.1")));
        assert!(!block.contains(ip("::1")));
        let one: Cidr = "192.168.1.7".parse().unwrap();
        assert!(one.contains(ip("192.168.1.7")) && !one.contains(ip("192.168.1.8")));
        let all: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(all.contains(ip("8.8.8.8")));
        let v6: Cidr = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")));
        for bad in [
            "10.0.0.0/33",
            "::/129",
            "nonsense",
            "10.0.0/8",
            "10.0.0.0/x",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn a_client_written_unreadable_element_does_not_hide_the_client_address() {
        // nginx appends the real address to what the client sent, on one line.
        let mut headers = HeaderMap::new();
        headers.append(
            X_FORWARDED_FOR,
            HeaderValue::from_bytes(b"1.2.3.4\xff, 198.51.100.7").unwrap(),
        );
        assert_eq!(
            proxies(&["10.0.0.0/8"]).client(Some(ip("10.0.0.2")), &headers),
            known("198.51.100.7")
        );
    }

    #[test]
    fn forwarded_for_is_ignored_from_untrusted_peers() {
        let headers = forwarded(&["1.2.3.4"]);
        assert_eq!(
            TrustedProxies::default().client(Some(ip("203.0.113.9")), &headers),
            known("203.0.113.9")
        );
        assert_eq!(
            proxies(&["10.0.0.0/8"]).client(Some(ip("203.0.113.9")), &headers),
            known("203.0.113.9"),
            "a client cannot claim another address by sending the header itself"
        );
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_address_is_the_client() {
        let trusted = proxies(&["10.0.0.0/8"]);
        let peer = Some(ip("10.0.0.2"));
        // The client invents an entry; its real address was appended by our proxies.
        let headers = forwarded(&["6.6.6.6, 198.51.100.7", "10.0.0.5"]);
        assert_eq!(trusted.client(peer, &headers), known("198.51.100.7"));
        // Ports and brackets some proxies add.
        let headers = forwarded(&["198.51.100.7:51234"]);
        assert_eq!(trusted.client(peer, &headers), known("198.51.100.7"));
        let headers = forwarded(&["[2001:db8::1]:443"]);
        assert_eq!(trusted.client(peer, &headers), known("2001:db8::1"));
        // No header: the proxy itself is the client (e.g. its health checks).
        assert_eq!(trusted.client(peer, &HeaderMap::new()), known("10.0.0.2"));
        // Only proxies, or garbage before them: the last address a proxy vouched for.
        let headers = forwarded(&["not-an-address, 10.0.0.9"]);
        assert_eq!(trusted.client(peer, &headers), known("10.0.0.9"));
    }

    #[test]
    fn mapped_ipv4_is_ipv4_and_ipv6_counts_by_its_64() {
        let trusted = TrustedProxies::default();
        assert_eq!(
            trusted.client(Some(ip("::ffff:192.0.2.1")), &HeaderMap::new()),
            known("192.0.2.1")
        );
        assert_eq!(known("192.0.2.1").bucket(), "192.0.2.1");
        assert_eq!(
            known("2001:db8:1:2:aaaa::1").bucket(),
            known("2001:db8:1:2:bbbb::9").bucket()
        );
        assert_eq!(known("2001:db8:1:2::1").bucket(), "2001:db8:1:2::/64");
        assert_eq!(
            trusted.client(None, &HeaderMap::new()),
            ClientAddress::Unknown
        );
    }
}
