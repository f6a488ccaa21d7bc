//! Typed clients of the services modeling reads from: governance (the clean log and where it
//! stands) and identity (persons and their change log).
//!
//! Each call has its deadline here, once, instead of at every call site; streams have none
//! (they live as long as the consumer). The credentials and the W3C trace context travel with
//! every call through [`CallCredentials`]. Failures come back as the upstream's
//! `tonic::Status`, code intact, so the caller can tell a refused record (INVALID_ARGUMENT)
//! from a passing outage (UNAVAILABLE).

use std::collections::HashMap;
use std::time::Duration;

use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use touchline_proto::common::v1::{Identifier, TailSelector};
use touchline_proto::governance::v1::governance_service_client::GovernanceServiceClient;
use touchline_proto::governance::v1::{
    GetCleanPositionRequest, ListCanonicalEventsRequest, TailCleanEventsRequest,
    TailCleanEventsResponse,
};
use touchline_proto::identity::v1::identity_service_client::IdentityServiceClient;
use touchline_proto::identity::v1::{
    BatchGetIdentifiersRequest, BatchResolveRequest, ConfirmErasureRequest, ReassignedNumber,
    ReassignmentOutcome, RecordReassignedNumbersRequest, ResolveItem, ResolveResult,
    TailIdentityChangesRequest, TailIdentityChangesResponse,
};
use touchline_runtime::client::CallCredentials;

/// The largest clean-log or change-log batch modeling accepts (a batch of 500 events with
/// large properties passes the default 4 MiB).
const MAX_REPLY_BYTES: usize = 64 * 1024 * 1024;
/// A position lookup is one indexed read.
const POSITION_DEADLINE: Duration = Duration::from_secs(2);
/// A resolve call of up to 1,000 identifiers, row locks included.
const RESOLVE_DEADLINE: Duration = Duration::from_secs(30);
/// A page of the event dictionary.
const DICTIONARY_DEADLINE: Duration = Duration::from_secs(5);
/// Most dictionary pages read for one question (1,000 names a page).
const MAX_DICTIONARY_PAGES: usize = 20;
/// An erasure confirmation is one row.
const CONFIRM_DEADLINE: Duration = Duration::from_secs(10);

/// The generated governance client with the service's credentials.
pub type GovernanceStub = GovernanceServiceClient<InterceptedService<Channel, CallCredentials>>;
/// The generated identity client with the service's credentials.
pub type IdentityStub = IdentityServiceClient<InterceptedService<Channel, CallCredentials>>;

/// Where cleaning stands for one raw-log position of a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CleanPosition {
    /// Whether every raw event up to the position asked about was cleaned.
    pub cleaned: bool,
    /// The clean-log head as of governance's raw cursor.
    pub clean_head: i64,
}

/// Governance, as modeling uses it.
#[derive(Debug, Clone)]
pub struct Governance {
    stub: GovernanceStub,
}

impl Governance {
    /// Calls through `channel` with `credentials`.
    pub fn new(channel: Channel, credentials: CallCredentials) -> Self {
        Self {
            stub: GovernanceServiceClient::with_interceptor(channel, credentials)
                .max_decoding_message_size(MAX_REPLY_BYTES),
        }
    }

    /// The clean log from `selector` on, as a stream that waits for new events.
    pub async fn tail(
        &self,
        selector: TailSelector,
    ) -> Result<tonic::Streaming<TailCleanEventsResponse>, tonic::Status> {
        let request = TailCleanEventsRequest {
            selector: Some(selector),
        };
        Ok(self
            .stub
            .clone()
            .tail_clean_events(request)
            .await?
            .into_inner())
    }

    /// Where cleaning stands for `raw_sequence` of `tenant`.
    pub async fn clean_position(
        &self,
        tenant: &str,
        raw_sequence: i64,
    ) -> Result<CleanPosition, tonic::Status> {
        let mut request = tonic::Request::new(GetCleanPositionRequest {
            parent: format!("tenants/{tenant}"),
            raw_sequence,
        });
        request.set_timeout(POSITION_DEADLINE);
        let reply = self
            .stub
            .clone()
            .get_clean_position(request)
            .await?
            .into_inner();
        Ok(CleanPosition {
            cleaned: reply.cleaned,
            clean_head: reply.clean_head,
        })
    }

    /// The canonical event names of `tenant`'s draft dictionary, deprecated ones included.
    pub async fn canonical_event_names(&self, tenant: &str) -> Result<Vec<String>, tonic::Status> {
        Ok(self
            .canonical_events(tenant)
            .await?
            .into_iter()
            .map(|e| e.name)
            .collect())
    }

    /// The events the tenant's dictionary defines, with their conversion flags.
    pub async fn canonical_events(&self, tenant: &str) -> Result<Vec<DefinedEvent>, tonic::Status> {
        let mut names = Vec::new();
        let mut page_token = String::new();
        for _ in 0..MAX_DICTIONARY_PAGES {
            let mut request = tonic::Request::new(ListCanonicalEventsRequest {
                parent: format!("tenants/{tenant}"),
                page_size: 1_000,
                page_token,
                show_deprecated: true,
                ..ListCanonicalEventsRequest::default()
            });
            request.set_timeout(DICTIONARY_DEADLINE);
            let reply = self
                .stub
                .clone()
                .list_canonical_events(request)
                .await?
                .into_inner();
            names.extend(reply.canonical_events.into_iter().map(|e| DefinedEvent {
                name: e.event_name,
                conversion: e.conversion,
            }));
            if reply.next_page_token.is_empty() {
                break;
            }
            page_token = reply.next_page_token;
        }
        Ok(names)
    }
}

/// One event of a tenant's dictionary, as modeling reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DefinedEvent {
    /// The canonical name.
    pub name: String,
    /// Whether the dictionary flags it as a conversion.
    pub conversion: bool,
}

/// Identity, as modeling uses it.
#[derive(Debug, Clone)]
pub struct Identity {
    stub: IdentityStub,
}

impl Identity {
    /// Calls through `channel` with `credentials`.
    pub fn new(channel: Channel, credentials: CallCredentials) -> Self {
        Self {
            stub: IdentityServiceClient::with_interceptor(channel, credentials)
                .max_decoding_message_size(MAX_REPLY_BYTES),
        }
    }

    /// One person (or the reason for none) per item, in item order.
    pub async fn batch_resolve(
        &self,
        tenant: &str,
        items: Vec<ResolveItem>,
    ) -> Result<Vec<ResolveResult>, tonic::Status> {
        let mut request = tonic::Request::new(BatchResolveRequest {
            parent: format!("tenants/{tenant}"),
            items,
        });
        request.set_timeout(RESOLVE_DEADLINE);
        Ok(self
            .stub
            .clone()
            .batch_resolve(request)
            .await?
            .into_inner()
            .results)
    }

    /// Records that the carrier gave `phones` out again, each held by its current subscriber
    /// since `holder_since`; what each record did, in order.
    pub async fn record_reassigned_numbers(
        &self,
        tenant: &str,
        phones: Vec<Identifier>,
        holder_since: prost_types::Timestamp,
    ) -> Result<Vec<ReassignmentOutcome>, tonic::Status> {
        let mut request = tonic::Request::new(RecordReassignedNumbersRequest {
            parent: format!("tenants/{tenant}"),
            numbers: phones
                .into_iter()
                .map(|phone| ReassignedNumber {
                    identifier: Some(phone),
                    holder_since: Some(holder_since),
                })
                .collect(),
        });
        request.set_timeout(RESOLVE_DEADLINE);
        Ok(self
            .stub
            .clone()
            .record_reassigned_numbers(request)
            .await?
            .into_inner()
            .results
            .iter()
            .map(|r| r.outcome())
            .collect())
    }

    /// The identifiers of `types` each of `persons` holds, as identity stores them
    /// (pseudonymised types stay pseudonymised), asked at most 1,000 persons a call.
    pub async fn identifiers(
        &self,
        tenant: &str,
        persons: &[uuid::Uuid],
        types: &[String],
    ) -> Result<HashMap<uuid::Uuid, Vec<Identifier>>, tonic::Status> {
        let mut found = HashMap::new();
        for chunk in persons.chunks(1_000) {
            let mut request = tonic::Request::new(BatchGetIdentifiersRequest {
                parent: format!("tenants/{tenant}"),
                person_ids: chunk.iter().map(ToString::to_string).collect(),
                types: types.to_vec(),
            });
            request.set_timeout(RESOLVE_DEADLINE);
            let reply = self.stub.clone().batch_get_identifiers(request).await?;
            for person in reply.into_inner().persons {
                if let Ok(id) = uuid::Uuid::parse_str(&person.person_id) {
                    found.insert(id, person.identifiers);
                }
            }
        }
        Ok(found)
    }

    /// Identity's change log from `selector` on, as a stream that waits for new changes.
    pub async fn tail_changes(
        &self,
        selector: TailSelector,
    ) -> Result<tonic::Streaming<TailIdentityChangesResponse>, tonic::Status> {
        let request = TailIdentityChangesRequest {
            selector: Some(selector),
        };
        Ok(self
            .stub
            .clone()
            .tail_identity_changes(request)
            .await?
            .into_inner())
    }

    /// Tells identity that modeling removed `removed_records` for the erasure `name`.
    pub async fn confirm_erasure(
        &self,
        name: String,
        service: &str,
        removed_records: i64,
    ) -> Result<(), tonic::Status> {
        let mut request = tonic::Request::new(ConfirmErasureRequest {
            name,
            service: service.to_owned(),
            removed_records,
            request_id: String::new(),
        });
        request.set_timeout(CONFIRM_DEADLINE);
        self.stub.clone().confirm_erasure(request).await?;
        Ok(())
    }
}
