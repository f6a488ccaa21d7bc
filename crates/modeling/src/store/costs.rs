//! The cost reports attribution's ROI reads: aggregate records without a person (an ad
//! platform's daily report rows), summed per channel over a time range.

use std::collections::BTreeMap;

use prost::Message as _;
use sqlx::PgPool;
use touchline_proto::governance::v1::CleanEvent;

/// What a cost sum read: the costs per channel, and the report rows that could not count.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct CostSums {
    /// Cost per channel name, channels in name order.
    pub by_channel: Vec<(String, f64)>,
    /// Rows read.
    pub rows: u64,
    /// Rows without a finite non-negative cost, or without a channel, left out.
    pub rows_left_out: u64,
}

fn number(properties: Option<&prost_types::Struct>, name: &str) -> Option<f64> {
    use prost_types::value::Kind;
    match properties?.fields.get(name)?.kind.as_ref()? {
        Kind::NumberValue(number) => Some(*number),
        Kind::StringValue(text) => text.trim().parse().ok(),
        _ => None,
    }
}

fn text(properties: Option<&prost_types::Struct>, name: &str) -> Option<String> {
    use prost_types::value::Kind;
    match properties?.fields.get(name)?.kind.as_ref()? {
        Kind::StringValue(text) => Some(text.clone()),
        _ => None,
    }
}

/// Sums `cost_property` of the person-less `event_name` records of `tenant` in
/// `[start_ms, end_ms)`, per the record's channel or per `channel_property` when given.
pub async fn cost_sums(
    pool: &PgPool,
    tenant: &str,
    event_name: &str,
    cost_property: &str,
    channel_property: Option<&str>,
    (start_ms, end_ms): (i64, i64),
) -> Result<CostSums, sqlx::Error> {
    let start = chrono::DateTime::from_timestamp_millis(start_ms).unwrap_or_default();
    let end = chrono::DateTime::from_timestamp_millis(end_ms).unwrap_or_default();
    let rows: Vec<(String, Vec<u8>)> = sqlx::query_as(
        "SELECT channel, payload FROM modeling.events
          WHERE tenant_id = $1 AND event_name = $2 AND person_id IS NULL
            AND event_time >= $3 AND event_time < $4",
    )
    .bind(tenant)
    .bind(event_name)
    .bind(start)
    .bind(end)
    .fetch_all(pool)
    .await?;
    let mut sums: BTreeMap<String, f64> = BTreeMap::new();
    let mut read = CostSums::default();
    for (stored_channel, payload) in rows {
        read.rows += 1;
        let Ok(clean) = CleanEvent::decode(payload.as_slice()) else {
            read.rows_left_out += 1;
            continue;
        };
        let properties = clean.properties.as_ref();
        let channel = match channel_property {
            Some(name) => text(properties, name).unwrap_or_default(),
            None => stored_channel,
        };
        match number(properties, cost_property) {
            Some(cost) if cost.is_finite() && cost >= 0.0 && !channel.is_empty() => {
                *sums.entry(channel).or_default() += cost;
            }
            _ => read.rows_left_out += 1,
        }
    }
    read.by_channel = sums.into_iter().collect();
    Ok(read)
}
