//! The HTTP client's name resolver: the address policy applied at connect time.
//!
//! The client connects only to the addresses this resolver returns, so checking them here,
//! rather than in a separate lookup before the request, leaves no window in which the name
//! could be made to resolve elsewhere (DNS rebinding). Hosts written as IP addresses never
//! reach a resolver; the sender checks those itself before each request.

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

use crate::address::AddressPolicy;

/// Resolves with the system resolver, then refuses the name unless every address is allowed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PolicyResolver {
    pub(crate) policy: AddressPolicy,
}

impl Resolve for PolicyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let policy = self.policy;
        Box::pin(async move {
            // The connector puts the URL's port on the addresses itself.
            let addresses = policy.resolve(name.as_str(), 0).await?;
            let addresses: Addrs = Box::new(addresses.into_iter());
            Ok(addresses)
        })
    }
}
