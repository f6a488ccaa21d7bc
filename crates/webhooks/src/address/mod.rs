//! Which URLs a webhook may be sent to.
//!
//! Tenants choose the URLs, and the sender runs inside our network, so an unchecked URL would
//! let a tenant make our servers post to our own databases, metadata services or admin ports
//! (server-side request forgery). A URL is accepted only over HTTPS (plain HTTP only where the
//! operator allows it), without credentials in it, and only when every address its host
//! stands for is public.
//!
//! The check runs twice: [`AddressPolicy::check_url`] when an endpoint is registered (no I/O:
//! syntax, scheme and literal IP hosts), and [`AddressPolicy::resolve`] each time the sender
//! connects, because the addresses a name resolves to can change after registration (a name
//! that resolved to a public address on Monday may resolve to 10.0.0.5 on Tuesday). The sender
//! connects to exactly the addresses `resolve` approved, never to a second lookup's.

mod class;

use std::net::{IpAddr, SocketAddr};

pub use class::{AddressClass, classify};
use url::{Host, Url};

/// What the operator allows beyond public HTTPS endpoints. The default allows nothing more.
///
/// Link-local, multicast, broadcast, documentation and reserved addresses are refused under
/// every policy: no real receiver lives there, and link-local is where cloud metadata
/// services answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AddressPolicy {
    /// `http://` URLs, for development and tests; the payload then travels in clear text.
    pub allow_plain_http: bool,
    /// Loopback and the unspecified address (which reaches this machine too), for a receiver
    /// running beside the service in development and tests.
    pub allow_loopback: bool,
    /// Private ranges (10/8, 172.16/12, 192.168/16, fc00::/7) and carrier-grade NAT, for a
    /// deployment whose receivers are on the same private network.
    pub allow_private: bool,
}

/// Why a URL or an address is refused. [`AddressRejection::code`] gives a stable identifier
/// for each reason, for API error details.
#[derive(Debug, thiserror::Error)]
pub enum AddressRejection {
    #[error("not a valid URL: {0}")]
    InvalidUrl(#[from] url::ParseError),
    #[error("the URL scheme must be https, not {scheme:?}")]
    UnsupportedScheme { scheme: String },
    #[error("plain http is not allowed; use https")]
    PlainHttp,
    #[error("the URL must not contain a user name or password")]
    Credentials,
    #[error("the URL has no host")]
    MissingHost,
    #[error("{address} is {class}, not a public address")]
    NonPublicAddress {
        address: IpAddr,
        class: AddressClass,
    },
    #[error("{host} resolves to {address}, which is {class}, not a public address")]
    ResolvesToNonPublic {
        host: String,
        address: IpAddr,
        class: AddressClass,
    },
    #[error("{host} could not be resolved")]
    Unresolvable {
        host: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{host} resolves to no address")]
    NoAddresses { host: String },
}

impl AddressRejection {
    /// A stable upper-snake-case identifier of the reason.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidUrl(_) => "INVALID_URL",
            Self::UnsupportedScheme { .. } => "UNSUPPORTED_SCHEME",
            Self::PlainHttp => "PLAIN_HTTP",
            Self::Credentials => "CREDENTIALS_IN_URL",
            Self::MissingHost => "MISSING_HOST",
            Self::NonPublicAddress { .. } => "NON_PUBLIC_ADDRESS",
            Self::ResolvesToNonPublic { .. } => "RESOLVES_TO_NON_PUBLIC_ADDRESS",
            Self::Unresolvable { .. } => "UNRESOLVABLE_HOST",
            Self::NoAddresses { .. } => "NO_ADDRESSES",
        }
    }
}

impl AddressPolicy {
    /// Public HTTPS endpoints only (the default).
    pub const STRICT: Self = Self {
        allow_plain_http: false,
        allow_loopback: false,
        allow_private: false,
    };

    /// Everything a receiver on this machine needs: plain HTTP to loopback. For tests and
    /// local development.
    pub const LOCAL: Self = Self {
        allow_plain_http: true,
        allow_loopback: true,
        allow_private: false,
    };

    /// Parses `text` and checks what can be checked without DNS: the scheme, credentials,
    /// and a host written as an IP address (in any form the URL standard accepts, such as
    /// `127.1`, `2130706433` or `[::ffff:127.0.0.1]`, which it normalises first).
    pub fn check_url(&self, text: &str) -> Result<Url, AddressRejection> {
        let url = Url::parse(text)?;
        match url.scheme() {
            "https" => {}
            "http" if self.allow_plain_http => {}
            "http" => return Err(AddressRejection::PlainHttp),
            other => {
                return Err(AddressRejection::UnsupportedScheme {
                    scheme: other.to_owned(),
                });
            }
        }
        // Credentials would be sent to the receiver as basic auth, and `https://trusted@evil`
        // misleads whoever reads the URL; neither belongs in a webhook endpoint.
        if !url.username().is_empty() || url.password().is_some() {
            return Err(AddressRejection::Credentials);
        }
        match url.host() {
            None => return Err(AddressRejection::MissingHost),
            Some(Host::Domain(_)) => {}
            Some(Host::Ipv4(ip)) => self.check_ip(IpAddr::V4(ip))?,
            Some(Host::Ipv6(ip)) => self.check_ip(IpAddr::V6(ip))?,
        }
        Ok(url)
    }

    /// Whether the policy lets the sender connect to `ip`.
    pub fn check_ip(&self, ip: IpAddr) -> Result<(), AddressRejection> {
        let class = classify(ip);
        if self.allows(class) {
            Ok(())
        } else {
            Err(AddressRejection::NonPublicAddress { address: ip, class })
        }
    }

    /// Resolves `host` and returns its addresses with `port`, if every one of them is allowed.
    ///
    /// One refused address refuses the host: with several addresses the connection could go
    /// to any of them, and a name that mixes a public address with an internal one is more
    /// likely an attack than a mistake.
    pub async fn resolve(
        &self,
        host: &str,
        port: u16,
    ) -> Result<Vec<SocketAddr>, AddressRejection> {
        let addresses: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|source| AddressRejection::Unresolvable {
                host: host.to_owned(),
                source,
            })?
            .collect();
        if addresses.is_empty() {
            return Err(AddressRejection::NoAddresses {
                host: host.to_owned(),
            });
        }
        for address in &addresses {
            let class = classify(address.ip());
            if !self.allows(class) {
                return Err(AddressRejection::ResolvesToNonPublic {
                    host: host.to_owned(),
                    address: address.ip(),
                    class,
                });
            }
        }
        Ok(addresses)
    }

    /// [`AddressPolicy::check_url`], then [`AddressPolicy::resolve`] for a host given by name:
    /// the whole check, for telling a tenant at registration that their URL will not work.
    pub async fn check_endpoint(&self, text: &str) -> Result<Url, AddressRejection> {
        let url = self.check_url(text)?;
        if let Some(Host::Domain(name)) = url.host() {
            let port = url.port_or_known_default().unwrap_or(443);
            self.resolve(name, port).await?;
        }
        Ok(url)
    }

    fn allows(&self, class: AddressClass) -> bool {
        match class {
            AddressClass::Public => true,
            AddressClass::Loopback | AddressClass::Unspecified => self.allow_loopback,
            AddressClass::Private | AddressClass::SharedAddressSpace => self.allow_private,
            AddressClass::LinkLocal
            | AddressClass::Multicast
            | AddressClass::Broadcast
            | AddressClass::Documentation
            | AddressClass::Reserved => false,
        }
    }
}

#[cfg(test)]
mod tests;
