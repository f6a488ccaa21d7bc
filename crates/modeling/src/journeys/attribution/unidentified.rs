//! Conversions stored without a person: a walk-in sale paid without member card or phone, a
//! sale recorded only on a shared store device. No journey can be read for them, so no model
//! credits them; left out silently they would make every channel look as if it converted
//! less than it did, so the reply counts them apart.
//!
//! They are counted by the very rules that count a person's conversions: the person-less
//! rows enter a small view of their own, each standing for a person of its own (or, with a
//! conversion key, one per key, so an order reported twice counts once), and the request's
//! plan reads that view. Every one of them is then a conversion without a touch.

use std::collections::HashMap;

use touchline_analytics::attribution::AttributionError;
use touchline_projection::ProjectionError;
use uuid::Uuid;

use super::collect::{Plan, collect};
use super::query::{Conversion, ValidAttribution};
use crate::journeys::RunContext;
use crate::journeys::encode::property_text;
use crate::journeys::query::{FieldFilter, Operator, Violations};
use crate::journeys::view::TenantView;
use crate::store::journal::JournalEvent;

/// Conversions without a person, and their value, in all and by channel.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Unidentified {
    /// Conversions.
    pub conversions: f64,
    /// Their value.
    pub value: f64,
    /// `(channel, conversions, value)` by the channel of the events that recorded them, most
    /// conversions first, counted among that channel's events alone.
    pub by_channel: Vec<(String, f64, f64)>,
    /// When the query credits them ([`ValidAttribution::credit_unidentified`]): `(channel,
    /// conversions, value)` by the channel each conversion's own event is read as (as
    /// touches are read), each conversion once, in channel order; a conversion whose event
    /// names no channel is in none. Empty otherwise.
    pub recorded: Vec<(String, f64, f64)>,
}

/// Why the count could not be made.
#[derive(Debug, thiserror::Error)]
pub enum UnidentifiedError {
    /// The rows did not fit a projection (a full dictionary).
    #[error(transparent)]
    Projection(#[from] ProjectionError),
    /// The request does not bind to the rows (a bug: the same request bound to the
    /// tenant's view).
    #[error("the request does not bind to the rows without a person: {0:?}")]
    Plan(Violations),
    /// The journey reader refused the rows.
    #[error(transparent)]
    Journeys(#[from] AttributionError),
}

/// The event names whose person-less rows may be conversions (`None`: any name).
pub fn conversion_names(query: &ValidAttribution) -> Option<Vec<String>> {
    match &query.conversion {
        Conversion::Event(matcher) if matcher.event_name.is_empty() => None,
        Conversion::Event(matcher) => Some(vec![matcher.event_name.clone()]),
        Conversion::Dictionary(names) => Some(names.clone()),
    }
}

/// Whom each person-less row stands for: one stand-in per conversion key value when the
/// request names a key, otherwise one per row.
struct StandIns {
    key: Option<String>,
    by_key: HashMap<String, Uuid>,
    issued: u128,
}

impl StandIns {
    fn new(key: Option<String>) -> Self {
        Self {
            key,
            by_key: HashMap::new(),
            issued: 0,
        }
    }

    fn fresh(&mut self) -> Uuid {
        self.issued += 1;
        Uuid::from_u128(self.issued)
    }

    fn of(&mut self, row: &JournalEvent) -> Uuid {
        let key = self
            .key
            .as_deref()
            .and_then(|name| property_text(&row.payload, name))
            .filter(|text| !text.is_empty());
        match key {
            Some(text) => match self.by_key.get(&text) {
                Some(id) => *id,
                None => {
                    let id = self.fresh();
                    self.by_key.insert(text, id);
                    id
                }
            },
            None => self.fresh(),
        }
    }
}

/// Counts the conversions `query` finds among `chunks` of person-less rows, read as the
/// tenant's view with the analysable `properties` reads them.
pub fn count(
    chunks: impl Iterator<Item = Vec<JournalEvent>>,
    properties: Vec<String>,
    query: &ValidAttribution,
    threads: usize,
) -> Result<Unidentified, UnidentifiedError> {
    let mut stand_ins = StandIns::new(query.conversion_key.clone());
    let chunks = chunks.map(|mut chunk| {
        for row in &mut chunk {
            row.person_id = stand_ins.of(row);
        }
        chunk
    });
    let view = TenantView::build(chunks, properties, threads)?;
    if view.projection.events() == 0 {
        return Ok(Unidentified::default());
    }
    // Only what decides whether a row is a conversion, and its value, matters here: no
    // models, the default touches (never a conversion), the channel as stored.
    let reading = ValidAttribution {
        touchpoints: Vec::new(),
        channel: Default::default(),
        referrer: None,
        models: Vec::new(),
        ..query.clone()
    };
    // The names were checked against the tenant's view and dictionary already.
    let run = RunContext {
        defined: conversion_names(query).unwrap_or_default(),
        threads,
        ..RunContext::default()
    };
    let (conversions, value) = conversions_of(&view, &reading, &run)?;
    // Where sales go unidentified is what a brand can act on (the tills that ask for no
    // member card or phone), so the count is repeated with each stored channel as a scope
    // condition: the same rules, on that channel's events alone.
    let channels = &view.projection.dictionaries().channels;
    let mut by_channel = Vec::new();
    for code in 0..channels.len() as u32 {
        let Some(channel) = channels.text(code).filter(|name| !name.is_empty()) else {
            continue;
        };
        let mut scope_filters = reading.scope_filters.clone();
        scope_filters.push(FieldFilter {
            field: "channel".to_owned(),
            operator: Operator::Equals,
            values: vec![channel.to_owned()],
        });
        let on_channel = ValidAttribution {
            scope_filters,
            ..reading.clone()
        };
        let (count, worth) = conversions_of(&view, &on_channel, &run)?;
        if count > 0.0 {
            by_channel.push((channel.to_owned(), count, worth));
        }
    }
    by_channel.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let recorded = if query.credit_unidentified {
        recorded(&view, query, &run)?
    } else {
        Vec::new()
    };
    Ok(Unidentified {
        conversions,
        value,
        by_channel,
        recorded,
    })
}

/// Each conversion of `view` by the channel its own event is read as: the request's plan,
/// with the conversion its journey's one touch, over the stand-ins (who hold nothing else).
fn recorded(
    view: &TenantView,
    query: &ValidAttribution,
    run: &RunContext,
) -> Result<Vec<(String, f64, f64)>, UnidentifiedError> {
    let reading = ValidAttribution {
        touchpoints: Vec::new(),
        models: Vec::new(),
        ..query.clone()
    };
    let plan = Plan::new(view, &reading, run)
        .map_err(UnidentifiedError::Plan)?
        .with_conversion_touch();
    let table = collect(view, &plan, run)?.table;
    let names = table.channel_names();
    let mut by_channel: Vec<(String, f64, f64)> = table
        .rows()
        .filter(|row| row.conversions > 0.0)
        .filter_map(|row| {
            let [code] = row.channels else { return None };
            let name = names.get(*code as usize)?;
            Some((name.clone(), row.conversions, row.value))
        })
        .collect();
    by_channel.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(by_channel)
}

/// The conversions (with touches or without) and their value that `reading` finds in `view`.
fn conversions_of(
    view: &TenantView,
    reading: &ValidAttribution,
    run: &RunContext,
) -> Result<(f64, f64), UnidentifiedError> {
    let plan = Plan::new(view, reading, run).map_err(UnidentifiedError::Plan)?;
    let table = collect(view, &plan, run)?.table;
    Ok((
        table.total_conversions() + table.direct_conversions(),
        table.total_value() + table.direct_value(),
    ))
}

#[cfg(test)]
mod tests {
    //! The count against a naive reading on random person-less rows: an `order` counts once
    //! per key (the first by time, then sequence, with its value: a later one is a repeat
    //! even when the first lies before the range) and once per row without a key, when it
    //! lies in the range; credited, it counts under the channel of that first report. The store reads only the range's rows, so there a key counts once
    //! within the range.

    use std::collections::BTreeMap;

    use prost::Message as _;
    use rand::{Rng as _, SeedableRng as _};
    use rand_chacha::ChaCha8Rng;
    use touchline_proto::governance::v1::CleanEvent;

    use super::*;
    use crate::journeys::attribution::query::{
        AttributionQuery, ModelRequest, ModelType, UnidentifiedChoice,
    };
    use crate::journeys::query::{Matcher, Scope};

    const T0: i64 = 1_788_739_200_000;
    const HOUR: i64 = 3_600_000;
    const KEYS: [&str; 4] = ["", "o1", "o2", "o3"];
    /// Channels: a till, a CRM import, none.
    const CHANNELS: [&str; 3] = ["pos", "crm", ""];

    fn row(
        sequence: i64,
        (name, channel): (&str, &str),
        time: i64,
        value: f64,
        key: &str,
    ) -> JournalEvent {
        let mut properties = prost_types::Struct::default();
        if !key.is_empty() {
            properties.fields.insert(
                "order_id".to_owned(),
                prost_types::Value {
                    kind: Some(prost_types::value::Kind::StringValue(key.to_owned())),
                },
            );
        }
        JournalEvent {
            sequence,
            person_id: Uuid::nil(),
            event_name: name.to_owned(),
            channel: channel.to_owned(),
            event_time: chrono::DateTime::from_timestamp_millis(time).unwrap_or_default(),
            payload: CleanEvent {
                touchpoint_type: 1,
                value,
                properties: Some(properties),
                ..CleanEvent::default()
            }
            .encode_to_vec(),
        }
    }

    fn naive(rows: &[JournalEvent], range: (i64, i64), keyed: bool) -> Unidentified {
        let mut orders: Vec<&JournalEvent> =
            rows.iter().filter(|r| r.event_name == "order").collect();
        orders.sort_by_key(|r| (r.event_time, r.sequence));
        let mut seen = BTreeMap::new();
        let mut count = Unidentified::default();
        for order in orders {
            let key = property_text(&order.payload, "order_id").filter(|_| keyed);
            if key.is_some_and(|key| seen.insert(key, ()).is_some()) {
                continue;
            }
            if !(range.0..range.1).contains(&order.event_time.timestamp_millis()) {
                continue;
            }
            let value =
                CleanEvent::decode(order.payload.as_slice()).map_or(0.0, |clean| clean.value);
            count.conversions += 1.0;
            count.value += value;
            // Credited to the channel of the report that counted, when it names one.
            if !order.channel.is_empty() {
                match count.recorded.iter_mut().find(|r| r.0 == order.channel) {
                    Some(entry) => {
                        entry.1 += 1.0;
                        entry.2 += value;
                    }
                    None => count.recorded.push((order.channel.clone(), 1.0, value)),
                }
            }
        }
        count.recorded.sort_by(|a, b| a.0.cmp(&b.0));
        count
    }

    /// The count by channel against the naive reading of each channel's rows alone.
    fn assert_by_channel(
        case: usize,
        counted: &Unidentified,
        rows: &[JournalEvent],
        range: (i64, i64),
        keyed: bool,
    ) {
        let mut by_channel: Vec<(String, f64, f64)> = CHANNELS
            .iter()
            .filter(|channel| !channel.is_empty())
            .map(|channel| {
                let own: Vec<JournalEvent> = rows
                    .iter()
                    .filter(|r| r.channel == *channel)
                    .cloned()
                    .collect();
                let alone = naive(&own, range, keyed);
                ((*channel).to_owned(), alone.conversions, alone.value)
            })
            .filter(|(_, conversions, _)| *conversions > 0.0)
            .collect();
        by_channel.sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        assert_eq!(counted.by_channel.len(), by_channel.len(), "case {case}");
        for (got, want) in counted.by_channel.iter().zip(&by_channel) {
            assert_eq!((&got.0, got.1), (&want.0, want.1), "case {case}");
            assert!((got.2 - want.2).abs() < 1e-6, "case {case}");
        }
    }

    /// Up to 30 rows: orders and views, around the range, with and without value, channel
    /// and key.
    fn random_rows(rng: &mut ChaCha8Rng) -> Vec<JournalEvent> {
        (0..rng.random_range(0..30))
            .map(|i| {
                let name = if rng.random_bool(0.7) {
                    "order"
                } else {
                    "view"
                };
                let time = T0 + rng.random_range(-30..60) * HOUR;
                let value = if rng.random_bool(0.8) {
                    f64::from(rng.random_range(1..900u32))
                } else {
                    0.0
                };
                let channel = CHANNELS[rng.random_range(0..CHANNELS.len())];
                let key = KEYS[rng.random_range(0..KEYS.len())];
                row(i + 1, (name, channel), time, value, key)
            })
            .collect()
    }

    #[test]
    fn the_count_equals_a_naive_reading_on_random_rows() {
        let mut rng = ChaCha8Rng::seed_from_u64(16);
        for case in 0..2_000 {
            let rows = random_rows(&mut rng);
            let keyed = rng.random_bool(0.5);
            let credit_unidentified = rng.random_bool(0.5);
            let range = (T0, T0 + rng.random_range(1..40) * HOUR);
            let query = AttributionQuery {
                conversion: Some(Matcher {
                    event_name: "order".to_owned(),
                    filters: Vec::new(),
                }),
                conversion_key_field: if keyed {
                    "properties.order_id".to_owned()
                } else {
                    String::new()
                },
                scope: Scope {
                    start_ms: Some(range.0),
                    end_ms: Some(range.1),
                    ..Scope::default()
                },
                models: vec![ModelRequest {
                    kind: ModelType::LastTouch,
                    ..ModelRequest::default()
                }],
                unidentified: if credit_unidentified {
                    UnidentifiedChoice::RecordingChannel
                } else {
                    UnidentifiedChoice::Apart
                },
                ..AttributionQuery::default()
            };
            let valid = match query.validate(T0 + 100 * HOUR) {
                Ok(valid) => valid,
                Err(problems) => panic!("case {case}: refused: {:?}", problems.0),
            };
            let chunks = rows.chunks(4).map(<[JournalEvent]>::to_vec);
            let counted = count(
                chunks,
                vec!["properties.order_id".to_owned()],
                &valid,
                1 + case % 3,
            );
            let counted = counted.unwrap_or_else(|err| panic!("case {case}: {err}"));
            let expected = naive(&rows, range, keyed);
            assert_eq!(
                counted.conversions,
                expected.conversions,
                "case {case}: keyed {keyed}, range {range:?}, rows {:?}",
                rows.iter()
                    .map(|r| (
                        r.sequence,
                        r.event_name.clone(),
                        (r.event_time.timestamp_millis() - T0) / HOUR,
                        property_text(&r.payload, "order_id")
                    ))
                    .collect::<Vec<_>>()
            );
            assert!(
                (counted.value - expected.value).abs() < 1e-6,
                "case {case}: {counted:?} against {expected:?}"
            );
            assert_by_channel(case, &counted, &rows, range, keyed);
            assert_recorded(case, &counted, &expected, credit_unidentified);
        }
    }

    /// Credited, each counted conversion under its report's channel, as the naive reading
    /// has it; otherwise none.
    fn assert_recorded(case: usize, counted: &Unidentified, naive: &Unidentified, credit: bool) {
        if !credit {
            assert!(counted.recorded.is_empty(), "case {case}");
            return;
        }
        assert_eq!(
            counted.recorded.len(),
            naive.recorded.len(),
            "case {case}: {:?} against {:?}",
            counted.recorded,
            naive.recorded
        );
        for (got, want) in counted.recorded.iter().zip(&naive.recorded) {
            assert_eq!((&got.0, got.1), (&want.0, want.1), "case {case}");
            assert!((got.2 - want.2).abs() < 1e-6, "case {case}");
        }
    }
}
