//! The webhook egress guard (protocol.md §3): which addresses a webhook may
//! reach. It checks a webhook URL at `POST /watches` and, through
//! [`GuardedConnector`], every address a delivery connects to (DNS can change
//! between the two: rebinding). It owns the address rules and the name
//! resolution of webhooks; it must not know about watches or HTTP routes.
//!
//! - Refused by default: loopback, unspecified, "this network" (0.0.0.0/8),
//!   private (RFC 1918), CGNAT (100.64.0.0/10), link-local (169.254.0.0/16,
//!   fe80::/10), unique-local (fc00::/7), site-local (fec0::/10), multicast,
//!   broadcast and the other reserved IPv4 ranges (240.0.0.0/4), the
//!   documentation and benchmarking ranges, and IPv6 forms that embed a
//!   refused IPv4 address (IPv4-mapped `::ffff:a.b.c.d`, IPv4-compatible
//!   `::a.b.c.d`, NAT64 `64:ff9b::/96`, 6to4 `2002::/16`, Teredo `2001::/32`)
//!   or are local-use NAT64 (`64:ff9b:1::/48`).
//! - A URL is parsed by the WHATWG rules (the `url` crate), so `2130706433`,
//!   `0x7f.1` and `017700000001` are all 127.0.0.1 before they are checked.
//! - A host name is resolved and *every* address it resolves to is checked;
//!   one refused address refuses the URL. At delivery the connector resolves,
//!   checks and connects to exactly the checked addresses, so an answer cannot
//!   change between check and connect.
//! - The operator's allow-list ([`ServerConfig::webhook_allow`]) lets listed
//!   networks (`10.1.0.0/16`, `127.0.0.1`, `::1`) or host names
//!   (`hooks.internal`: exact name, any address it resolves to) through.
//!
//! [`ServerConfig::webhook_allow`]: super::ServerConfig::webhook_allow

use std::future::Future;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use actix_service::Service;
use actix_tls::connect::tcp::TcpConnectorService;
use actix_tls::connect::{ConnectError, ConnectInfo, Connection};
use awc::http::Uri;
use tokio::net::TcpStream;

/// Why a webhook target is refused; the message says what to do.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EgressError {
    /// The URL is longer than [`MAX_URL_LEN`].
    #[error("url is {0} bytes long: the limit is {MAX_URL_LEN} bytes; use a shorter URL")]
    TooLong(usize),
    /// The URL does not parse.
    #[error("url is not a URL ({0}): send an absolute http:// or https:// URL")]
    NotAUrl(url::ParseError),
    /// Another scheme than http or https.
    #[error("url scheme {0:?} is not allowed: use http:// or https://")]
    Scheme(String),
    /// The URL is valid, but awc's stricter URI parser refuses it.
    #[error("url {shown} cannot be requested ({why}): percent-encode unusual characters")]
    Unrequestable {
        /// The URL without its secrets.
        shown: String,
        /// The URI parser's complaint.
        why: String,
    },
    /// No host (e.g. `http:///x` normalised away) or an opaque one.
    #[error("url has no host: send an absolute http:// or https:// URL")]
    NoHost,
    /// The host is, or resolves to, an address webhooks may not reach.
    #[error(
        "url host {host} is or resolves to {addr} ({why} address): webhooks may not reach \
         the server's own network (an operator may allow it with --webhook-allow)"
    )]
    Refused {
        /// The host as written in the URL (normalised).
        host: String,
        /// The refused address.
        addr: IpAddr,
        /// Which kind of address it is.
        why: &'static str,
    },
    /// The host name did not resolve.
    #[error("url host {host} does not resolve ({source}): check the name")]
    Unresolved {
        /// The host name.
        host: String,
        /// The resolver's error.
        #[source]
        source: io::Error,
    },
    /// The resolver did not answer within [`RESOLVE_TIMEOUT`].
    #[error(
        "url host {0} did not resolve within {RESOLVE_TIMEOUT:?}: check the name, or retry later"
    )]
    ResolveTimeout(String),
    /// The host name resolved to no address at all.
    #[error("url host {0} resolves to no address: check the name")]
    NoAddress(String),
}

/// Why an allow-list entry is not understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum AllowRuleError {
    /// The prefix length after `/` is not a number within the address size.
    #[error("{0:?}: the prefix length must be 0–32 for IPv4 and 0–128 for IPv6 (e.g. 10.0.0.0/8)")]
    Prefix(String),
    /// Neither a network, an address nor a host name.
    #[error(
        "{0:?} is neither a network (10.0.0.0/8, fd00::/8), an address (127.0.0.1, ::1) nor a \
         host name (hooks.internal): give one of these, without scheme or port"
    )]
    Unreadable(String),
}

/// A network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Network {
    addr: IpAddr,
    prefix: u8,
}

impl Network {
    fn contains(&self, ip: IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                prefix_eq(&net.octets(), &ip.octets(), self.prefix)
            }
            _ => false,
        }
    }
}

/// Whether the first `prefix` bits of `a` and `b` are equal.
fn prefix_eq(a: &[u8], b: &[u8], prefix: u8) -> bool {
    let whole = usize::from(prefix / 8);
    let rest = prefix % 8;
    if a.get(..whole) != b.get(..whole) {
        return false;
    }
    if rest == 0 {
        return true;
    }
    let mask = 0xffu8 << (8 - rest);
    match (a.get(whole), b.get(whole)) {
        (Some(x), Some(y)) => x & mask == y & mask,
        _ => false,
    }
}

/// One entry of the allow-list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AllowRule {
    /// A network (an address alone is a /32 or /128).
    Network(Network),
    /// A host name, lower case (and punycode), matched exactly.
    Host(String),
}

impl AllowRule {
    /// Reads `10.0.0.0/8`, `fd00::/8`, `127.0.0.1`, `[::1]`, `::1` or `hooks.internal`.
    pub(crate) fn parse(entry: &str) -> Result<Self, AllowRuleError> {
        let entry = entry.trim();
        let unreadable = || AllowRuleError::Unreadable(entry.to_owned());
        if let Some((addr, prefix)) = entry.split_once('/') {
            let addr: IpAddr = addr.parse().map_err(|_| unreadable())?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let prefix = prefix
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| AllowRuleError::Prefix(entry.to_owned()))?;
            return Ok(AllowRule::Network(Network { addr, prefix }));
        }
        let bare = strip_brackets(entry);
        if let Ok(addr) = bare.parse::<IpAddr>() {
            return Ok(AllowRule::Network(Network {
                addr,
                prefix: if addr.is_ipv4() { 32 } else { 128 },
            }));
        }
        if entry.is_empty() || entry.contains([':', '/', '@', '?', '#']) {
            return Err(unreadable());
        }
        match url::Host::parse(entry).map_err(|_| unreadable())? {
            url::Host::Domain(name) => Ok(AllowRule::Host(name)),
            url::Host::Ipv4(addr) => Ok(AllowRule::Network(Network {
                addr: addr.into(),
                prefix: 32,
            })),
            url::Host::Ipv6(addr) => Ok(AllowRule::Network(Network {
                addr: addr.into(),
                prefix: 128,
            })),
        }
    }
}

/// `[::1]` → `::1`; anything else unchanged.
fn strip_brackets(host: &str) -> &str {
    host.strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host)
}

/// Why `ip` may not be a webhook target by default, or `None` when it may.
pub(crate) fn refusal(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(ip) => refusal_v4(ip),
        IpAddr::V6(ip) => refusal_v6(ip),
    }
}

fn refusal_v4(ip: Ipv4Addr) -> Option<&'static str> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        _ if ip.is_unspecified() => "unspecified",
        (0, ..) => "\"this network\" (0.0.0.0/8)",
        (127, ..) => "loopback",
        (10, ..) | (172, 16..=31, _) | (192, 168, _) => "private (RFC 1918)",
        (100, 64..=127, _) => "CGNAT (100.64.0.0/10)",
        (169, 254, _) => "link-local",
        (192, 0, 0) => "IETF protocol assignment (192.0.0.0/24)",
        (192, 0, 2) | (198, 51, 100) | (203, 0, 113) => "documentation",
        (198, 18..=19, _) => "benchmarking (198.18.0.0/15)",
        (224..=239, ..) => "multicast",
        _ if ip.is_broadcast() => "broadcast",
        (240..=255, ..) => "reserved (240.0.0.0/4)",
        _ => return None,
    })
}

fn refusal_v6(ip: Ipv6Addr) -> Option<&'static str> {
    let segments = ip.segments();
    let octets = ip.octets();
    let embedded =
        |at: usize| Ipv4Addr::new(octets[at], octets[at + 1], octets[at + 2], octets[at + 3]);
    if ip.is_unspecified() {
        return Some("unspecified");
    }
    if ip.is_loopback() {
        return Some("loopback");
    }
    // IPv4-mapped (::ffff:a.b.c.d) and IPv4-compatible (::a.b.c.d).
    if let Some(v4) = ip.to_ipv4() {
        return refusal_v4(v4).map(|_| "IPv4-mapped or -compatible form of a refused");
    }
    match segments {
        [0x64, 0xff9b, 0, 0, 0, 0, ..] => {
            refusal_v4(embedded(12)).map(|_| "NAT64 (64:ff9b::/96) form of a refused")
        }
        [0x64, 0xff9b, 1, ..] => Some("local-use NAT64 (64:ff9b:1::/48)"),
        [0x2002, ..] => refusal_v4(embedded(2)).map(|_| "6to4 (2002::/16) form of a refused"),
        [0x2001, 0, ..] => {
            // Teredo: the client's IPv4 address is the last 32 bits, inverted.
            let client = !u32::from(embedded(12));
            refusal_v4(Ipv4Addr::from(client)).map(|_| "Teredo (2001::/32) form of a refused")
        }
        [0x2001, 0xdb8, ..] => Some("documentation (2001:db8::/32)"),
        [0x100, 0, 0, 0, ..] => Some("discard-only (100::/64)"),
        [first, ..] if first & 0xfe00 == 0xfc00 => Some("unique-local (fc00::/7)"),
        [first, ..] if first & 0xffc0 == 0xfe80 => Some("link-local (fe80::/10)"),
        [first, ..] if first & 0xffc0 == 0xfec0 => Some("site-local (fec0::/10)"),
        [first, ..] if first & 0xff00 == 0xff00 => Some("multicast"),
        _ => None,
    }
}

/// The longest webhook URL accepted, in bytes (each webhook watch keeps its
/// URL for as long as it lives; real ones are far shorter). A longer one is
/// refused with 400 at `POST /watches`.
pub(crate) const MAX_URL_LEN: usize = 8 * 1024;

/// The longest wait for a host name's addresses (at `POST /watches` and on
/// each delivery connection); then the name counts as unresolved, so a slow
/// resolver holds neither a request nor a delivery for long.
pub(crate) const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// How host names become addresses: the system resolver, or a test's.
pub(crate) trait Lookup: Send + Sync {
    /// The addresses of `host` (a name, never an address literal) at `port`.
    fn lookup<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + 'a>>;
}

/// The operating system's resolver (getaddrinfo on tokio's blocking pool).
struct SystemLookup;

impl Lookup for SystemLookup {
    fn lookup<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + 'a>> {
        Box::pin(async move { Ok(tokio::net::lookup_host((host, port)).await?.collect()) })
    }
}

/// A checked webhook URL.
#[derive(Clone)]
pub(crate) struct WebhookUrl {
    /// The normalised URL (no fragment) that deliveries request.
    pub(crate) url: url::Url,
}

impl WebhookUrl {
    /// The host as deliveries see it (normalised, IPv6 in brackets).
    pub(crate) fn host(&self) -> &str {
        self.url.host_str().unwrap_or_default()
    }

    /// The URL for logs: without user name, password, query or fragment.
    pub(crate) fn redacted(&self) -> String {
        redact(&self.url)
    }
}

impl std::fmt::Debug for WebhookUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

/// `url` without user name, password, query or fragment: what may be logged
/// (a webhook URL often carries a token in its query or its user info).
pub(crate) fn redact(url: &url::Url) -> String {
    let mut shown = url.clone();
    // Only a URL without host refuses these; a webhook URL always has one.
    let _ = shown.set_username("");
    let _ = shown.set_password(None);
    shown.set_query(None);
    shown.set_fragment(None);
    shown.to_string()
}

/// The egress rules of webhooks: the default refusals and the allow-list.
pub(crate) struct EgressPolicy {
    allow: Vec<AllowRule>,
    lookup: Arc<dyn Lookup>,
}

impl std::fmt::Debug for EgressPolicy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EgressPolicy")
            .field("allow", &self.allow)
            .finish_non_exhaustive()
    }
}

impl EgressPolicy {
    /// The policy of `allow` entries (as in [`ServerConfig::webhook_allow`],
    /// already validated). An entry that does not parse is logged and left
    /// out, which only refuses more.
    ///
    /// [`ServerConfig::webhook_allow`]: super::ServerConfig::webhook_allow
    pub(crate) fn new(allow: &[String]) -> Self {
        let allow = allow
            .iter()
            .filter_map(|entry| {
                AllowRule::parse(entry)
                    .map_err(|e| log::error!("webhooks: allow-list entry left out: {e}"))
                    .ok()
            })
            .collect();
        EgressPolicy {
            allow,
            lookup: Arc::new(SystemLookup),
        }
    }

    /// The same rules, resolving names with `lookup` (tests).
    #[cfg(test)]
    pub(crate) fn with_lookup(mut self, lookup: Arc<dyn Lookup>) -> Self {
        self.lookup = lookup;
        self
    }

    /// Parses and checks a webhook URL (at `POST /watches`): http or https,
    /// requestable by awc, a host, and every address of that host allowed.
    pub(crate) async fn check_url(&self, raw: &str) -> Result<WebhookUrl, EgressError> {
        if raw.len() > MAX_URL_LEN {
            return Err(EgressError::TooLong(raw.len()));
        }
        let mut url = url::Url::parse(raw).map_err(EgressError::NotAUrl)?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(EgressError::Scheme(url.scheme().to_owned()));
        }
        url.set_fragment(None);
        // Deliveries send with awc, whose URI parser is stricter than WHATWG's.
        if let Err(e) = url.as_str().parse::<Uri>() {
            return Err(EgressError::Unrequestable {
                shown: redact(&url),
                why: e.to_string(),
            });
        }
        let host = url.host_str().ok_or(EgressError::NoHost)?.to_owned();
        let port = url.port_or_known_default().ok_or(EgressError::NoHost)?;
        self.resolve_checked(&host, port).await?;
        Ok(WebhookUrl { url })
    }

    /// The addresses of `host` (a name, an address, or `[v6]`) at `port`,
    /// each one allowed; else why not.
    pub(crate) async fn resolve_checked(
        &self,
        host: &str,
        port: u16,
    ) -> Result<Vec<SocketAddr>, EgressError> {
        let bare = strip_brackets(host);
        if let Ok(ip) = bare.parse::<IpAddr>() {
            self.check_ip(bare, ip)?;
            return Ok(vec![SocketAddr::new(ip, port)]);
        }
        let name = bare.to_ascii_lowercase();
        let addrs = tokio::time::timeout(RESOLVE_TIMEOUT, self.lookup.lookup(&name, port))
            .await
            .map_err(|_| EgressError::ResolveTimeout(name.clone()))?
            .map_err(|source| EgressError::Unresolved {
                host: name.clone(),
                source,
            })?;
        if addrs.is_empty() {
            return Err(EgressError::NoAddress(name));
        }
        let by_name = self
            .allow
            .iter()
            .any(|rule| matches!(rule, AllowRule::Host(allowed) if *allowed == name));
        if !by_name {
            for addr in &addrs {
                self.check_ip(&name, addr.ip())?;
            }
        }
        Ok(addrs)
    }

    /// `ip` (reached through `host`) is allowed: listed, or not refused.
    fn check_ip(&self, host: &str, ip: IpAddr) -> Result<(), EgressError> {
        let canonical = ip.to_canonical();
        let listed = self.allow.iter().any(|rule| {
            matches!(rule, AllowRule::Network(net) if net.contains(ip) || net.contains(canonical))
        });
        match refusal(ip) {
            Some(why) if !listed => Err(EgressError::Refused {
                host: host.to_owned(),
                addr: ip,
                why,
            }),
            _ => Ok(()),
        }
    }
}

/// awc's TCP connector with the egress guard in front: it resolves the host
/// itself, checks every address, and connects only to the checked ones.
#[derive(Clone)]
pub(crate) struct GuardedConnector {
    policy: Arc<EgressPolicy>,
    tcp: TcpConnectorService,
}

impl GuardedConnector {
    /// A connector that enforces `policy` on every connection.
    pub(crate) fn new(policy: Arc<EgressPolicy>) -> Self {
        GuardedConnector {
            policy,
            tcp: TcpConnectorService::default(),
        }
    }
}

impl Service<ConnectInfo<Uri>> for GuardedConnector {
    type Response = Connection<Uri, TcpStream>;
    type Error = ConnectError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>>>>;

    actix_service::always_ready!();

    fn call(&self, request: ConnectInfo<Uri>) -> Self::Future {
        let policy = self.policy.clone();
        let tcp = self.tcp;
        Box::pin(async move {
            let host = request.hostname().to_owned();
            let addrs = policy
                .resolve_checked(&host, request.port())
                .await
                .map_err(|e| ConnectError::Resolver(Box::new(e)))?;
            // Resolved: the TCP service connects to these and resolves nothing.
            tcp.call(request.set_addrs(addrs)).await
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn refused(text: &str) -> bool {
        refusal(text.parse().expect("an address")).is_some()
    }

    #[test]
    fn the_server_s_own_networks_are_refused() {
        for ip in [
            "127.0.0.1",
            "127.8.9.10",
            "0.0.0.0",
            "0.1.2.3",
            "10.0.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.168.1.1",
            "100.64.0.1",
            "100.127.255.255",
            "169.254.169.254",
            "224.0.0.1",
            "255.255.255.255",
            "240.0.0.1",
            "::",
            "::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "64:ff9b:1::1",
            "2002:7f00:1::1",
            "2002:c0a8:101::",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "fec0::1",
            "ff02::1",
        ] {
            assert!(refused(ip), "{ip} should be refused");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "172.32.0.1",
            "100.128.0.1",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
        ] {
            assert!(!refused(ip), "{ip} should be allowed");
        }
    }

    #[test]
    fn allow_rules_read_networks_addresses_and_names() {
        let net = |s: &str| match AllowRule::parse(s) {
            Ok(AllowRule::Network(net)) => net,
            other => panic!("{s}: {other:?}"),
        };
        assert!(net("10.0.0.0/8").contains("10.9.8.7".parse().unwrap()));
        assert!(!net("10.0.0.0/8").contains("11.0.0.1".parse().unwrap()));
        assert!(net("127.0.0.1").contains("127.0.0.1".parse().unwrap()));
        assert!(!net("127.0.0.1").contains("127.0.0.2".parse().unwrap()));
        assert!(net("[::1]").contains("::1".parse().unwrap()));
        assert!(net("fd00::/8").contains("fd12::1".parse().unwrap()));
        assert!(net("0.0.0.0/0").contains("1.2.3.4".parse().unwrap()));
        assert!(net("172.16.0.0/12").contains("172.31.0.1".parse().unwrap()));
        assert!(!net("172.16.0.0/12").contains("172.32.0.1".parse().unwrap()));
        assert_eq!(
            AllowRule::parse("Hooks.Internal"),
            Ok(AllowRule::Host("hooks.internal".into()))
        );
        assert!(matches!(
            AllowRule::parse("10.0.0.0/33"),
            Err(AllowRuleError::Prefix(_))
        ));
        for bad in ["", "http://x", "x:80", "10.0.0.0/x/1", "a b"] {
            assert!(AllowRule::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn redaction_drops_credentials_query_and_fragment() {
        let url = url::Url::parse("https://user:pw@hooks.example.com:8443/a/b?token=t#f").unwrap();
        assert_eq!(redact(&url), "https://hooks.example.com:8443/a/b");
        let checked = WebhookUrl { url };
        assert_eq!(format!("{checked:?}"), "https://hooks.example.com:8443/a/b");
    }

    /// Answers each lookup with the next of its planned answers.
    struct Planned {
        answers: Vec<Vec<SocketAddr>>,
        calls: AtomicUsize,
    }

    impl Lookup for Planned {
        fn lookup<'a>(
            &'a self,
            _host: &'a str,
            _port: u16,
        ) -> Pin<Box<dyn Future<Output = io::Result<Vec<SocketAddr>>> + 'a>> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            let answer = self.answers[n.min(self.answers.len() - 1)].clone();
            Box::pin(async move { Ok(answer) })
        }
    }

    fn planned(answers: Vec<Vec<SocketAddr>>) -> Arc<Planned> {
        Arc::new(Planned {
            answers,
            calls: AtomicUsize::new(0),
        })
    }

    /// A name that resolved to a public address when the watch was made and
    /// to loopback at delivery (DNS rebinding): the delivery's connection is
    /// refused before it is made, through awc as deliveries use it.
    #[actix_rt::test]
    async fn a_name_rebound_to_loopback_is_refused_at_delivery() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let local = listener.local_addr().unwrap();
        let public = SocketAddr::from(([93, 184, 216, 34], local.port()));

        let cases = [
            // One refused address among several refuses the connection.
            (vec![], vec![public, local], false),
            // The control: with loopback allowed, the same answer connects.
            (vec!["127.0.0.1".to_owned()], vec![local], true),
        ];
        for (allow, later, reached) in cases {
            let lookup = planned(vec![vec![public], later]);
            let policy = Arc::new(EgressPolicy::new(&allow).with_lookup(lookup.clone()));
            let url = format!("http://rebind.example:{}/hook", local.port());
            assert!(policy.check_url(&url).await.is_ok(), "public at creation");

            let client = crate::server::webhooks::delivery_client(
                std::time::Duration::from_secs(2),
                Arc::new(crate::server::webhooks::default_tls()),
                policy,
            );
            let sent = client.get(&url).send().await;
            assert_eq!(lookup.calls.load(Ordering::SeqCst), 2, "resolved again");
            match (sent, reached) {
                (Err(e), false) => assert!(e.to_string().contains("loopback"), "{e}"),
                // Allowed: the connection to the listener is made (it never
                // answers, so the request times out).
                (Err(awc::error::SendRequestError::Timeout), true) => {
                    assert!(listener.accept().is_ok(), "the allowed address was reached")
                }
                (other, _) => panic!("allow {allow:?}: unexpected {other:?}"),
            }
            if !reached {
                assert!(listener.accept().is_err(), "no connection was made");
            }
        }
    }
}
