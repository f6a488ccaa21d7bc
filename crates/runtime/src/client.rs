//! How one touchline service calls another: a lazily connected channel, and
//! an interceptor that carries the caller's credentials and the current
//! trace context on every call.

use std::time::Duration;

use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint};

/// A channel to `url` that connects on first use and reconnects on its own.
pub fn lazy_channel(url: &str) -> Result<Channel, tonic::transport::Error> {
    Ok(Endpoint::from_shared(url.to_owned())?
        .connect_timeout(Duration::from_secs(3))
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true)
        .connect_lazy())
}

/// Adds `authorization: Bearer …` and W3C trace context to each call.
#[derive(Clone)]
pub struct CallCredentials {
    bearer: Option<MetadataValue<tonic::metadata::Ascii>>,
}

impl std::fmt::Debug for CallCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallCredentials")
            .field("bearer", &self.bearer.as_ref().map(|_| "[redacted]"))
            .finish()
    }
}

impl CallCredentials {
    /// Credentials sending `token` (a JWT) on every call.
    pub fn bearer(token: &str) -> Result<Self, tonic::metadata::errors::InvalidMetadataValue> {
        let mut value: MetadataValue<_> = format!("Bearer {token}").parse()?;
        value.set_sensitive(true);
        Ok(Self {
            bearer: Some(value),
        })
    }

    /// No credentials: trace context only.
    pub fn anonymous() -> Self {
        Self { bearer: None }
    }
}

impl Interceptor for CallCredentials {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(bearer) = &self.bearer {
            request
                .metadata_mut()
                .insert("authorization", bearer.clone());
        }
        touchline_telemetry::inject_context(request.metadata_mut());
        Ok(request)
    }
}
