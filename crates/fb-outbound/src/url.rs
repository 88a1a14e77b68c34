//! The SSRF guard: where an outbound client may connect, for URLs from settings or input.
//!
//! Two checks, both needed:
//!
//! 1. [`UrlPolicy::check`] when the URL is accepted (settings load, an API request): it parses,
//!    and refuses what is wrong whatever the name resolves to (scheme, credentials, port, and a
//!    host that is an address or `localhost` of a forbidden kind). The answer is
//!    [`FieldError`]s naming the field, all of them at once.
//! 2. [`resolve_checked`] before connecting: it resolves the host and refuses if *any* address
//!    is forbidden, which defeats names that point at 127.0.0.1 or the metadata service.
//!
//! **DNS rebinding.** A name can resolve to a public address for the check and to 127.0.0.1 a
//! second later, when the client resolves it again. A client therefore connects only to the
//! addresses `resolve_checked` returned (keeping the name for `Host` and TLS SNI), e.g. with
//! reqwest's `resolve_to_addrs` or a connector fed these addresses, and never lets its library
//! resolve the name itself. For the same reason clients of these URLs follow no redirect on
//! their own (each `Location` goes through both checks again) and use no proxy from the
//! environment (the proxy would resolve the name where no check runs).
//!
//! Hosts are read the way clients read them: the `url` crate parses hosts by the WHATWG URL
//! standard, so `http://0x7f.1/`, `http://2130706433/` and `http://0177.0.0.1/` are all
//! 127.0.0.1, and `http://ⓛocalhost/` is `localhost`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::ops::RangeInclusive;

use ::url::{Host, Url};
use fb_core::error::FieldError;

use crate::classify::{Classify, ErrorClass};

/// Longer URLs are refused: no outbound target needs more, and input is bounded.
pub const MAX_URL_LEN: usize = 2048;

/// What kind of address a host is, by the IANA special-purpose address registries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressClass {
    /// Routable on the internet.
    Global,
    /// RFC 1918 (10/8, 172.16/12, 192.168/16), IPv6 unique local fc00::/7 and the old
    /// site-local fec0::/10.
    Private,
    /// 100.64/10, carrier-grade NAT (RFC 6598); also some overlay networks on a plant's LAN.
    SharedAddressSpace,
    /// 127/8, ::1, and the names `localhost` and `*.localhost` (RFC 6761).
    Loopback,
    /// 169.254/16 and fe80::/10. Most cloud metadata services answer at 169.254.169.254.
    LinkLocal,
    /// Cloud metadata services outside link-local: AWS's IPv6 fd00:ec2::254 (in the private
    /// fc00::/7) and Alibaba's 100.100.100.200 (in the carrier-grade NAT range). They hand out
    /// the host's credentials, so they are refused even where their range is allowed.
    CloudMetadata,
    /// 0.0.0.0/8 and ::. Linux connects 0.0.0.0 to the local host.
    Unspecified,
    Multicast,
    /// 255.255.255.255.
    Broadcast,
    /// 192.0.2/24, 198.51.100/24, 203.0.113/24, 2001:db8::/32, 3fff::/20.
    Documentation,
    /// 198.18/15, 2001:2::/48.
    Benchmarking,
    /// Everything else that is not globally routable: 240/4, IETF protocol assignments
    /// (192.0.0/24, 2001::/23), the old 6to4 relay anycast, IPv4-compatible IPv6, the discard
    /// prefix 100::/64, and IPv6 outside 2000::/3.
    Reserved,
}

impl AddressClass {
    pub fn of(address: IpAddr) -> Self {
        match address {
            IpAddr::V4(v4) => Self::of_v4(v4),
            IpAddr::V6(v6) => Self::of_v6(v6),
        }
    }

    pub fn of_v4(address: Ipv4Addr) -> Self {
        if address == Ipv4Addr::BROADCAST {
            return Self::Broadcast;
        }
        match address.octets() {
            [0, ..] => Self::Unspecified,
            [10, ..] | [172, 16..=31, ..] | [192, 168, ..] => Self::Private,
            [100, 100, 100, 200] => Self::CloudMetadata,
            [100, 64..=127, ..] => Self::SharedAddressSpace,
            [127, ..] => Self::Loopback,
            [169, 254, ..] => Self::LinkLocal,
            [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => Self::Documentation,
            [198, 18..=19, ..] => Self::Benchmarking,
            [192, 0, 0, _] | [192, 88, 99, _] | [240..=255, ..] => Self::Reserved,
            [224..=239, ..] => Self::Multicast,
            _ => Self::Global,
        }
    }

    /// IPv6 addresses that carry an IPv4 address and reach it through translation (IPv4-mapped
    /// `::ffff:a.b.c.d`, NAT64 `64:ff9b::a.b.c.d`, 6to4 `2002:aabb:ccdd::`) take the class of
    /// that IPv4 address: `[::ffff:127.0.0.1]` is loopback.
    pub fn of_v6(address: Ipv6Addr) -> Self {
        if address.is_unspecified() {
            return Self::Unspecified;
        }
        if address.is_loopback() {
            return Self::Loopback;
        }
        if let Some(v4) = address.to_ipv4_mapped() {
            return Self::of_v4(v4);
        }
        let s = address.segments();
        let embedded = |high: u16, low: u16| {
            let [a, b] = high.to_be_bytes();
            let [c, d] = low.to_be_bytes();
            Self::of_v4(Ipv4Addr::new(a, b, c, d))
        };
        match s {
            [0x64, 0xff9b, 0, 0, 0, 0, high, low] => embedded(high, low),
            [0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254] => Self::CloudMetadata,
            [0x2002, high, low, ..] => embedded(high, low),
            // IPv4-compatible (deprecated by RFC 4291), and the rest of ::/8.
            [0, ..] => Self::Reserved,
            [0x100, 0, 0, 0, ..] => Self::Reserved,
            [0x2001, 0x2, 0, ..] => Self::Benchmarking,
            [0x2001, 0xdb8, ..] => Self::Documentation,
            [0x2001, 0..=0x1ff, ..] => Self::Reserved,
            [0x3fff, 0..=0x0fff, ..] => Self::Documentation,
            [first, ..] if first & 0xfe00 == 0xfc00 => Self::Private,
            [first, ..] if first & 0xffc0 == 0xfe80 => Self::LinkLocal,
            [first, ..] if first & 0xffc0 == 0xfec0 => Self::Private,
            [first, ..] if first & 0xff00 == 0xff00 => Self::Multicast,
            [first, ..] if first & 0xe000 == 0x2000 => Self::Global,
            _ => Self::Reserved,
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Self::Global => "a public address",
            Self::Private => "a private address",
            Self::SharedAddressSpace => "a carrier-grade NAT address",
            Self::Loopback => "a loopback address",
            Self::LinkLocal => "a link-local address (where cloud metadata services answer)",
            Self::CloudMetadata => "a cloud metadata service address",
            Self::Unspecified => "an unspecified address",
            Self::Multicast => "a multicast address",
            Self::Broadcast => "the broadcast address",
            Self::Documentation => "a documentation address",
            Self::Benchmarking => "a benchmarking address",
            Self::Reserved => "a reserved address",
        }
    }
}

/// Which addresses a policy lets clients reach.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// Public, private, carrier-grade NAT and loopback.
    Internal,
    /// Public only.
    Public,
}

/// What a URL must be for one use: allowed schemes, credentials, ports and addresses.
///
/// Link-local and cloud metadata addresses, unspecified, multicast, broadcast, documentation,
/// benchmarking and reserved addresses are refused by every policy: no service a client should
/// reach lives there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UrlPolicy {
    schemes: Vec<String>,
    /// Ports of schemes the URL standard gives none (mqtt, redis, postgres), for URLs that name
    /// no port.
    default_ports: Vec<(String, u16)>,
    allow_userinfo: bool,
    ports: RangeInclusive<u16>,
    reach: Reach,
}

impl UrlPolicy {
    /// For URLs an administrator put in the settings, such as the plant's own inference server
    /// on its LAN: http and https to public, private, carrier-grade NAT and loopback addresses.
    pub fn internal() -> Self {
        Self {
            schemes: vec!["http".into(), "https".into()],
            default_ports: Vec::new(),
            allow_userinfo: false,
            ports: 1..=u16::MAX,
            reach: Reach::Internal,
        }
    }

    /// For URLs that come from input (a webhook a user registers, a link in a document): http
    /// and https to public addresses only, so that no caller can make the server reach into
    /// the plant's network or its own host.
    pub fn public_only() -> Self {
        Self {
            reach: Reach::Public,
            ..Self::internal()
        }
    }

    /// Replaces the allowed schemes (lower case, as the parser normalises them).
    pub fn with_schemes(mut self, schemes: &[&str]) -> Self {
        self.schemes = schemes.iter().map(|s| s.to_ascii_lowercase()).collect();
        self
    }

    /// The port of `scheme`'s URLs that name none, for schemes without a standard default
    /// (`mqtt` 1883, `redis` 6379, `postgres` 5432). Without it such a URL must name a port.
    pub fn with_default_port(mut self, scheme: &str, port: u16) -> Self {
        self.default_ports.push((scheme.to_ascii_lowercase(), port));
        self
    }

    /// Lets URLs carry `user:password@`. Off by default: credentials belong in secrets, where
    /// they are redacted, not in a URL that is logged and shown.
    pub fn allowing_userinfo(mut self) -> Self {
        self.allow_userinfo = true;
        self
    }

    /// Restricts ports (explicit, or the scheme's default).
    pub fn with_ports(mut self, ports: RangeInclusive<u16>) -> Self {
        self.ports = ports;
        self
    }

    /// Whether clients under this policy may connect to an address of this class.
    pub fn permits(&self, class: AddressClass) -> bool {
        match class {
            AddressClass::Global => true,
            AddressClass::Private | AddressClass::SharedAddressSpace | AddressClass::Loopback => {
                self.reach == Reach::Internal
            }
            AddressClass::LinkLocal
            | AddressClass::CloudMetadata
            | AddressClass::Unspecified
            | AddressClass::Multicast
            | AddressClass::Broadcast
            | AddressClass::Documentation
            | AddressClass::Benchmarking
            | AddressClass::Reserved => false,
        }
    }

    fn allowed_addresses(&self) -> &'static str {
        match self.reach {
            Reach::Internal => "allowed: public, private and loopback addresses",
            Reach::Public => "allowed: public addresses only",
        }
    }

    /// Parses `text`, the value of `field`, and checks it against this policy. Every problem
    /// found is reported, each as a [`FieldError`] on `field`.
    pub fn check(&self, field: &str, text: &str) -> Result<OutboundUrl, Vec<FieldError>> {
        let refuse = |reason: String| vec![FieldError::new(field, reason)];
        if text.len() > MAX_URL_LEN {
            return Err(refuse(format!("must be at most {MAX_URL_LEN} characters")));
        }
        let url = Url::parse(text).map_err(|e| refuse(format!("is not a valid URL: {e}")))?;
        let mut errors = Vec::new();
        if !self.schemes.iter().any(|s| s == url.scheme()) {
            errors.push(FieldError::new(
                field,
                format!(
                    "scheme '{}' is not allowed (allowed: {})",
                    url.scheme(),
                    self.schemes.join(", ")
                ),
            ));
        }
        if !self.allow_userinfo && (!url.username().is_empty() || url.password().is_some()) {
            errors.push(FieldError::new(
                field,
                "must not contain a user name or password; credentials belong in secrets",
            ));
        }
        match url.host().map(|host| static_class(&host)) {
            None | Some(StaticClass::Empty) => {
                errors.push(FieldError::new(field, "must have a host"));
            }
            Some(StaticClass::Invalid) => {
                errors.push(FieldError::new(
                    field,
                    "has a host that is not a valid name",
                ));
            }
            Some(StaticClass::Known(class)) if !self.permits(class) => {
                errors.push(FieldError::new(
                    field,
                    format!(
                        "host {} is {}; {}",
                        url.host_str().unwrap_or_default(),
                        class.describe(),
                        self.allowed_addresses()
                    ),
                ));
            }
            Some(StaticClass::Known(_) | StaticClass::Name) => {}
        }
        let port = url.port_or_known_default().or_else(|| {
            self.default_ports
                .iter()
                .find(|(scheme, _)| scheme == url.scheme())
                .map(|(_, port)| *port)
        });
        match port {
            None => errors.push(FieldError::new(field, "must name a port")),
            Some(port) if !self.ports.contains(&port) => errors.push(FieldError::new(
                field,
                format!(
                    "port {port} is outside {}..={}",
                    self.ports.start(),
                    self.ports.end()
                ),
            )),
            Some(_) => {}
        }
        match port {
            Some(port) if errors.is_empty() => Ok(OutboundUrl {
                url,
                port,
                policy: self.clone(),
            }),
            _ => Err(errors),
        }
    }
}

/// What a host is before anything is resolved.
enum StaticClass {
    Known(AddressClass),
    /// A domain name: its addresses are known only after resolution.
    Name,
    Empty,
    Invalid,
}

fn static_class(host: &Host<&str>) -> StaticClass {
    match host {
        Host::Ipv4(v4) => StaticClass::Known(AddressClass::of_v4(*v4)),
        Host::Ipv6(v6) => StaticClass::Known(AddressClass::of_v6(*v6)),
        Host::Domain("") => StaticClass::Empty,
        // Hosts of special schemes (http, https, ws…) were parsed already; for the others the
        // host is opaque text that a resolver would still read as an address (`0x7f.1`), so
        // it is parsed here the same way.
        Host::Domain(text) => match Host::parse(text) {
            Ok(Host::Ipv4(v4)) => StaticClass::Known(AddressClass::of_v4(v4)),
            Ok(Host::Ipv6(v6)) => StaticClass::Known(AddressClass::of_v6(v6)),
            Ok(Host::Domain(name)) => {
                let name = name.trim_end_matches('.');
                if name == "localhost" || name.ends_with(".localhost") {
                    StaticClass::Known(AddressClass::Loopback)
                } else {
                    StaticClass::Name
                }
            }
            Err(_) => StaticClass::Invalid,
        },
    }
}

/// A URL that passed [`UrlPolicy::check`], with the policy that its resolved addresses must
/// pass too. `Display` and `Debug` hide a password, if the policy allowed one.
#[derive(Clone, PartialEq, Eq)]
pub struct OutboundUrl {
    url: Url,
    port: u16,
    policy: UrlPolicy,
}

impl OutboundUrl {
    /// The URL itself, for the client's request (password included).
    pub fn as_url(&self) -> &Url {
        &self.url
    }

    /// The host as written, normalised by the parser (IPv6 in brackets).
    pub fn host(&self) -> &str {
        self.url.host_str().unwrap_or_default()
    }

    /// The explicit port, or the scheme's default.
    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn policy(&self) -> &UrlPolicy {
        &self.policy
    }

    fn redacted(&self) -> Url {
        let mut url = self.url.clone();
        if url.password().is_some() {
            // Fails only for URLs without a host, which never pass the check.
            let _ = url.set_password(Some("redacted"));
        }
        url
    }
}

impl fmt::Display for OutboundUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.redacted().as_str())
    }
}

impl fmt::Debug for OutboundUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("OutboundUrl")
            .field(&self.redacted().as_str())
            .finish()
    }
}

/// Why [`resolve_checked`] gave no addresses.
#[derive(Debug)]
pub enum ResolveError {
    /// The resolver failed (no answer, no such name). Retryable: a resolver that is briefly
    /// unreachable looks the same from here as a name that does not exist.
    Lookup {
        host: String,
        source: std::io::Error,
    },
    /// The name resolved to nothing.
    NoAddresses { host: String },
    /// One of the addresses is one the policy forbids; the client must not connect to any.
    Forbidden {
        host: String,
        address: IpAddr,
        class: AddressClass,
    },
}

impl ResolveError {
    /// The error as a validation failure of the field the URL came from, for a use case that
    /// resolves an input URL when it is saved.
    pub fn field_error(&self, field: &str) -> FieldError {
        FieldError::new(field, self.to_string())
    }
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Lookup { host, source } => write!(f, "cannot resolve host {host}: {source}"),
            Self::NoAddresses { host } => write!(f, "host {host} has no addresses"),
            Self::Forbidden {
                host,
                address,
                class,
            } => write!(
                f,
                "host {host} resolves to {address}, which is {}",
                class.describe()
            ),
        }
    }
}

impl std::error::Error for ResolveError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Lookup { source, .. } => Some(source),
            Self::NoAddresses { .. } | Self::Forbidden { .. } => None,
        }
    }
}

impl Classify for ResolveError {
    fn class(&self) -> ErrorClass {
        match self {
            Self::Lookup { .. } => ErrorClass::RETRYABLE,
            Self::NoAddresses { .. } | Self::Forbidden { .. } => ErrorClass::Permanent,
        }
    }
}

/// Resolves the URL's host and returns its socket addresses, or refuses if any of them is
/// forbidden by the URL's policy. Connect to these addresses and no others (see the module
/// documentation on DNS rebinding). An address literal is returned without asking the resolver.
pub async fn resolve_checked(url: &OutboundUrl) -> Result<Vec<SocketAddr>, ResolveError> {
    let host = url.host();
    let addresses = match url.url.host() {
        Some(Host::Ipv4(v4)) => vec![SocketAddr::new(IpAddr::V4(v4), url.port)],
        Some(Host::Ipv6(v6)) => vec![SocketAddr::new(IpAddr::V6(v6), url.port)],
        Some(Host::Domain(name)) => tokio::net::lookup_host((name, url.port))
            .await
            .map_err(|source| ResolveError::Lookup {
                host: host.to_owned(),
                source,
            })?
            .collect(),
        None => Vec::new(),
    };
    check_addresses(&url.policy, host, addresses)
}

fn check_addresses(
    policy: &UrlPolicy,
    host: &str,
    addresses: Vec<SocketAddr>,
) -> Result<Vec<SocketAddr>, ResolveError> {
    if addresses.is_empty() {
        return Err(ResolveError::NoAddresses {
            host: host.to_owned(),
        });
    }
    for address in &addresses {
        let class = AddressClass::of(address.ip());
        if !policy.permits(class) {
            return Err(ResolveError::Forbidden {
                host: host.to_owned(),
                address: address.ip(),
                class,
            });
        }
    }
    Ok(addresses)
}

#[cfg(test)]
mod tests;
