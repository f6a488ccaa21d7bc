//! Writes keyed by a `request_id` act once: a retry within the retention
//! gets the first reply back, and a duplicate racing the first is told to
//! retry shortly (ABORTED with a retry hint) instead of acting beside it.

use std::future::Future;

use prost::Message;
use touchline_db::{RequestKey, Run};

use crate::error::GovernanceError;
use crate::store;

/// Runs `call` once per (tenant, `request_id`, `method`). An empty
/// `request_id`, or a dry run, just runs it.
pub async fn once<T, F>(
    pool: &sqlx::PgPool,
    tenant: &str,
    request_id: &str,
    validate_only: bool,
    method: &'static str,
    call: F,
) -> Result<T, GovernanceError>
where
    T: Message + Default,
    F: Future<Output = Result<T, GovernanceError>>,
{
    let request_id = request_id.trim();
    if request_id.is_empty() || validate_only {
        return call.await;
    }
    let request_id = uuid::Uuid::parse_str(request_id)
        .map_err(|_| {
            GovernanceError::Invalid(vec![touchline_error::FieldViolation::new(
                "request_id",
                "INVALID_REQUEST_ID",
                "not a UUID",
            )])
        })?
        .to_string();
    let key = RequestKey {
        tenant,
        request_id: &request_id,
        method,
    };
    match store::REQUESTS
        .run(pool, &key, call, Message::encode_to_vec)
        .await?
    {
        Run::Acted(result) => result,
        Run::Replayed(bytes) => T::decode(bytes.as_slice())
            .map_err(|err| GovernanceError::Store(sqlx::Error::Decode(Box::new(err)))),
        Run::InFlight => Err(GovernanceError::InFlight),
    }
}
