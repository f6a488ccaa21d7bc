//! Typed instruments for the event pipeline, so other crates record what they measure without
//! naming OpenTelemetry instruments or attributes themselves.
//!
//! Every attribute here is bounded: log and consumer names are fixed in code, tenants are few,
//! reasons are a fixed vocabulary of each caller. Never pass message ids, identities, or error
//! text as an attribute value.

use std::sync::OnceLock;

use opentelemetry::KeyValue;
use opentelemetry::metrics::{Counter, Gauge};

/// The pipeline's instruments. Cheap to clone; get one with [`pipeline`].
#[derive(Debug, Clone)]
pub struct PipelineMetrics {
    lag_events: Gauge<i64>,
    lag_seconds: Gauge<f64>,
    quarantined: Counter<u64>,
    dead_letters: Counter<u64>,
    cache_lookups: Counter<u64>,
    import_rows: Counter<u64>,
    import_bytes: Counter<u64>,
}

/// The pipeline's instruments, bound to the installed meter provider.
///
/// After [`crate::metrics::install`] (or [`crate::init`]) this is one shared set; before it,
/// each call builds instruments on whatever global provider exists then (a no-op one in
/// processes that never install metrics), so nothing is cached against the wrong provider.
pub fn pipeline() -> PipelineMetrics {
    static SHARED: OnceLock<PipelineMetrics> = OnceLock::new();
    if super::is_installed() {
        SHARED.get_or_init(PipelineMetrics::new).clone()
    } else {
        PipelineMetrics::new()
    }
}

impl PipelineMetrics {
    fn new() -> Self {
        let meter = super::meter();
        Self {
            lag_events: meter
                .i64_gauge("touchline.consumer.lag")
                .with_unit("{event}")
                .with_description("Events of a log not yet processed by a consumer")
                .build(),
            lag_seconds: meter
                .f64_gauge("touchline.consumer.lag.age")
                .with_unit("s")
                .with_description("Age of the oldest event of a log not yet processed")
                .build(),
            quarantined: counter(
                &meter,
                "touchline.quarantine.events",
                "{event}",
                "Events quarantined, by reason",
            ),
            dead_letters: counter(
                &meter,
                "touchline.dead_letter.events",
                "{event}",
                "Events sent to the dead-letter log, by reason",
            ),
            cache_lookups: counter(
                &meter,
                "touchline.identity.cache.lookups",
                "{lookup}",
                "Identity cache lookups, by result (hit or miss)",
            ),
            import_rows: counter(
                &meter,
                "touchline.import.rows",
                "{row}",
                "Rows read by imports",
            ),
            import_bytes: counter(
                &meter,
                "touchline.import.read",
                "By",
                "Bytes read by imports",
            ),
        }
    }

    /// Records how far `consumer` is behind `log` for `tenant`: `events` not yet processed and
    /// the age in `seconds` of the oldest of them (0 when caught up). Gauges: the last value
    /// recorded for each (log, consumer, tenant) is what is reported.
    pub fn record_lag(&self, log: &str, consumer: &str, tenant: &str, events: i64, seconds: f64) {
        let attributes = [
            KeyValue::new("log", log.to_owned()),
            KeyValue::new("consumer", consumer.to_owned()),
            KeyValue::new("tenant", tenant.to_owned()),
        ];
        self.lag_events.record(events, &attributes);
        self.lag_seconds.record(seconds.max(0.0), &attributes);
    }

    /// Counts `n` events of `tenant` quarantined for `reason` (a fixed code such as
    /// `schema_violation`). Per tenant, like the lag: which tenant's source sends what it
    /// should not is the first thing an operator asks.
    pub fn count_quarantined(&self, tenant: &str, reason: &str, n: u64) {
        self.quarantined.add(
            n,
            &[
                KeyValue::new("tenant", tenant.to_owned()),
                KeyValue::new("reason", reason.to_owned()),
            ],
        );
    }

    /// Counts `n` events dead-lettered for `reason` (a fixed code, not error text).
    pub fn count_dead_letters(&self, reason: &str, n: u64) {
        self.dead_letters
            .add(n, &[KeyValue::new("reason", reason.to_owned())]);
    }

    /// Counts `n` identity cache lookups that hit (`true`) or missed (`false`).
    pub fn cache_lookup(&self, hit: bool, n: u64) {
        let result = if hit { "hit" } else { "miss" };
        self.cache_lookups
            .add(n, &[KeyValue::new("result", result)]);
    }

    /// Counts progress of imports: `rows` more rows and `bytes` more bytes read.
    pub fn import_progress(&self, rows: u64, bytes: u64) {
        self.import_rows.add(rows, &[]);
        self.import_bytes.add(bytes, &[]);
    }
}

/// A monotonic counter named `name`.
fn counter(
    meter: &opentelemetry::metrics::Meter,
    name: &'static str,
    unit: &'static str,
    description: &'static str,
) -> Counter<u64> {
    meter
        .u64_counter(name)
        .with_unit(unit)
        .with_description(description)
        .build()
}
