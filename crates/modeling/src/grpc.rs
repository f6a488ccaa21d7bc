//! The gRPC adapter of the modeling service.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use prost::Message as _;
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use touchline_error::{ApiError, ErrorCode, FieldViolation, to_status};
use touchline_proto::governance::v1::CleanEvent;
use touchline_proto::modeling::v1 as pb;
use touchline_proto::modeling::v1::modeling_service_server::ModelingService;

use crate::store;

/// Default and largest page of ListEvents.
const DEFAULT_PAGE: i32 = 100;
const MAX_PAGE: i32 = 1_000;

/// The modeling service's gRPC face.
#[derive(Debug, Clone)]
pub struct ModelingApi {
    pool: PgPool,
}

impl ModelingApi {
    /// A service over `pool`.
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// Failures of the modeling service.
#[derive(Debug, thiserror::Error)]
pub enum ModelingError {
    /// A page token that this service did not issue.
    #[error("page_token is not one this service issued")]
    BadPageToken,
    /// A page size out of range.
    #[error("page_size must be between 0 and {MAX_PAGE}")]
    BadPageSize,
    /// PostgreSQL failed.
    #[error("reading the event store failed")]
    Store(#[source] sqlx::Error),
}

impl ApiError for ModelingError {
    fn code(&self) -> ErrorCode {
        match self {
            ModelingError::BadPageToken | ModelingError::BadPageSize => ErrorCode::InvalidArgument,
            ModelingError::Store(err) if touchline_db::classify(err).is_transient() => {
                ErrorCode::Unavailable
            }
            ModelingError::Store(_) => ErrorCode::Internal,
        }
    }

    fn field_violations(&self) -> Vec<FieldViolation> {
        match self {
            ModelingError::BadPageToken => vec![FieldViolation::new(
                "page_token",
                "INVALID_PAGE_TOKEN",
                self.to_string(),
            )],
            ModelingError::BadPageSize => vec![FieldViolation::new(
                "page_size",
                "OUT_OF_RANGE",
                self.to_string(),
            )],
            ModelingError::Store(_) => Vec::new(),
        }
    }
}

fn encode_token(sequence: i64) -> String {
    URL_SAFE_NO_PAD.encode(format!("seq:{sequence}"))
}

fn decode_token(token: &str) -> Result<i64, ModelingError> {
    if token.is_empty() {
        return Ok(0);
    }
    let bytes = URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| ModelingError::BadPageToken)?;
    std::str::from_utf8(&bytes)
        .ok()
        .and_then(|text| text.strip_prefix("seq:"))
        .and_then(|n| n.parse().ok())
        .ok_or(ModelingError::BadPageToken)
}

fn rows(counts: store::Counts) -> Vec<pb::EventCount> {
    counts
        .into_iter()
        .map(|(key, events, persons)| pb::EventCount {
            key,
            events,
            persons,
        })
        .collect()
}

#[tonic::async_trait]
impl ModelingService for ModelingApi {
    #[tracing::instrument(name = "modeling.count_events", skip_all, fields(service = "modeling"))]
    async fn count_events(
        &self,
        request: Request<pb::CountEventsRequest>,
    ) -> Result<Response<pb::CountEventsResponse>, Status> {
        let tenant = touchline_auth::principal(&request)?.tenant_for(&request.get_ref().parent)?;
        let (total_events, total_persons, by_channel, by_event) =
            store::count_events(&self.pool, &tenant)
                .await
                .map_err(|err| to_status(&ModelingError::Store(err)))?;
        Ok(Response::new(pb::CountEventsResponse {
            total_events,
            total_persons,
            by_channel: rows(by_channel),
            by_event: rows(by_event),
        }))
    }

    #[tracing::instrument(name = "modeling.list_events", skip_all, fields(service = "modeling"))]
    async fn list_events(
        &self,
        request: Request<pb::ListEventsRequest>,
    ) -> Result<Response<pb::ListEventsResponse>, Status> {
        let tenant = touchline_auth::principal(&request)?.tenant_for(&request.get_ref().parent)?;
        let pb::ListEventsRequest {
            parent: _,
            page_size,
            page_token,
        } = request.into_inner();
        let limit = match page_size {
            0 => DEFAULT_PAGE,
            n if (1..=MAX_PAGE).contains(&n) => n,
            _ => return Err(to_status(&ModelingError::BadPageSize)),
        };
        let after = decode_token(&page_token).map_err(|err| to_status(&err))?;
        let stored = store::list_events(&self.pool, &tenant, after, i64::from(limit))
            .await
            .map_err(|err| to_status(&ModelingError::Store(err)))?;
        let next_page_token = match stored.last() {
            Some(last) if stored.len() == usize::try_from(limit).unwrap_or(usize::MAX) => {
                encode_token(last.sequence)
            }
            _ => String::new(),
        };
        let events = stored
            .into_iter()
            .map(|e| pb::StoredEvent {
                properties: CleanEvent::decode(e.payload.as_slice())
                    .ok()
                    .and_then(|c| c.properties),
                message_id: e.message_id,
                person_id: e.person_id.map(|p| p.to_string()).unwrap_or_default(),
                event_name: e.event_name,
                channel: e.channel,
                event_time: Some(prost_types::Timestamp {
                    seconds: e.event_time.timestamp(),
                    nanos: i32::try_from(e.event_time.timestamp_subsec_nanos()).unwrap_or(0),
                }),
                sequence: e.sequence,
            })
            .collect();
        Ok(Response::new(pb::ListEventsResponse {
            events,
            next_page_token,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_reject_forgeries() {
        assert_eq!(decode_token(&encode_token(42)).ok(), Some(42));
        assert_eq!(decode_token("").ok(), Some(0));
        assert!(decode_token("bm9wZQ").is_err());
    }
}
