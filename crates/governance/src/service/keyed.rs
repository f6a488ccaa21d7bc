//! Writes keyed by a `request_id` act once: a retry within the retention gets the first reply
//! back, and a duplicate racing the first is told to retry shortly (ABORTED with a retry hint)
//! instead of acting beside it. The reply is kept as the encoded message the caller got, so a
//! replay answers byte for byte what the first call answered.

use std::future::Future;

use prost::Message;
use touchline_db::{RequestKey, Run};

use super::Governance;
use crate::error::GovernanceError;
use crate::store;

/// What identifies a keyed write: the caller's key and the method it was given to.
#[derive(Debug, Clone, Copy)]
pub struct WriteKey<'a> {
    /// The caller's `request_id` (empty: not keyed).
    pub request_id: &'a str,
    /// A dry run acts on nothing, so it is never keyed.
    pub validate_only: bool,
    /// The method name the key is recorded under.
    pub method: &'static str,
}

impl Governance {
    /// Runs `call` once per (tenant, `request_id`, method). An empty `request_id`, or a dry
    /// run, just runs it.
    pub async fn once<T, F>(
        &self,
        tenant: &str,
        key: WriteKey<'_>,
        call: F,
    ) -> Result<T, GovernanceError>
    where
        T: Message + Default,
        F: Future<Output = Result<T, GovernanceError>>,
    {
        let request_id = key.request_id.trim();
        if request_id.is_empty() || key.validate_only {
            return call.await;
        }
        let request_id = uuid::Uuid::parse_str(request_id)
            .map_err(|_| {
                GovernanceError::invalid("request_id", "INVALID_REQUEST_ID", "not a UUID")
            })?
            .to_string();
        let key = RequestKey {
            tenant,
            request_id: &request_id,
            method: key.method,
        };
        match store::REQUESTS
            .run(&self.pool, &key, call, Message::encode_to_vec)
            .await?
        {
            Run::Acted(result) => result,
            Run::Replayed(bytes) => T::decode(bytes.as_slice())
                .map_err(|err| GovernanceError::Store(sqlx::Error::Decode(Box::new(err)))),
            Run::InFlight => Err(GovernanceError::InFlight),
        }
    }
}
