//! Settings of the collection service, read from the `collection` section of
//! the process configuration (`TOUCHLINE_COLLECTION__…` in the environment).

use serde::Deserialize;

/// How the collection service ingests and protects itself.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CollectionConfig {
    /// Reject events whose `source` is not a registered source (violation
    /// `SOURCE_NOT_REGISTERED`). Default false: such events are accepted
    /// with source revision 0 and governance treats them as generic SDK
    /// events.
    pub require_registered_sources: bool,
    /// Most events per IngestEvents call or StreamEvents batch.
    pub max_batch_events: usize,
    /// Most encoded bytes per IngestEvents call or StreamEvents batch.
    pub max_batch_bytes: usize,
    /// Most events being ingested at once over all callers; further calls
    /// wait up to `admission_wait_ms`, then get RESOURCE_EXHAUSTED.
    pub max_in_flight_events: usize,
    /// How long a call waits for room under `max_in_flight_events`.
    pub admission_wait_ms: u64,
    /// Sustained events per second one tenant may send.
    pub tenant_events_per_second: u32,
    /// Events one tenant may send in a burst above its rate.
    pub tenant_burst_events: u32,
    /// Sustained events per second one source of a tenant may send.
    pub source_events_per_second: u32,
    /// Events one source may send in a burst above its rate.
    pub source_burst_events: u32,
    /// How long the group committer waits for more batches to share a
    /// commit once it has one, in microseconds. Concurrent batches that
    /// arrive while a commit runs always share the next one.
    pub commit_linger_us: u64,
    /// Most events per shared commit.
    pub max_group_events: usize,
    /// Independent committers; a tenant always uses the same one, so its
    /// sequences are allocated without lock contention.
    pub committers: usize,
    /// Group commits one committer may have open at once: the next group
    /// is gathered and written while the previous one commits.
    pub commits_in_flight: usize,
    /// Write group commits with COPY while a tenant's message ids are new,
    /// falling back to INSERT … ON CONFLICT after a duplicate. Off: always
    /// INSERT.
    pub copy_appends: bool,
    /// Batches a StreamEvents call may have in flight before the server
    /// stops reading from it.
    pub stream_max_in_flight_batches: usize,
    /// Imports that may be uploading at once over all tenants.
    pub max_open_imports: usize,
}

impl Default for CollectionConfig {
    fn default() -> Self {
        Self {
            require_registered_sources: false,
            max_batch_events: 1_000,
            max_batch_bytes: 4 * 1024 * 1024,
            max_in_flight_events: 32_000,
            admission_wait_ms: 2_000,
            tenant_events_per_second: 200_000,
            tenant_burst_events: 400_000,
            source_events_per_second: 200_000,
            source_burst_events: 400_000,
            commit_linger_us: 500,
            max_group_events: 8_000,
            committers: 2,
            commits_in_flight: 2,
            copy_appends: true,
            stream_max_in_flight_batches: 16,
            max_open_imports: 64,
        }
    }
}
