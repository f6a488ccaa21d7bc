//! Generated customers through identity, scored against the generator's truth: the events of
//! a run as governance would hand them on (normalised, placeholders and invalid phones
//! dropped, phones and emails pseudonymised), resolved in calls of at most 1,000 identifiers,
//! one after another as modeling hands on a tenant's batches, or several in flight.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use touchline_identity::IdentityApi;
use touchline_proto::common::v1::Identifier;
use touchline_proto::identity::v1 as pb;
use touchline_sim::household::{Household, household_of};
use touchline_sim::{SimConfig, TemplateKind, TruthEvent};

use crate::helpers::{pseudonym, resolve};

/// Values governance drops as placeholders before identity sees them.
const PLACEHOLDERS: [&str; 3] = [
    "unknown",
    "13800000000",
    "00000000-0000-0000-0000-000000000000",
];

/// Identifiers per call, the contract's limit.
const MAX_IDENTIFIERS_PER_CALL: usize = 1_000;

/// One generated event as identity sees it.
#[derive(Debug, Clone)]
pub struct SimEvent {
    /// What BatchResolve gets.
    pub item: pb::ResolveItem,
    /// The true person's index.
    pub person: u64,
    /// The phone numbers it carries, normalised (before pseudonymisation).
    pub phones: Vec<String>,
}

/// A run's events in stream order (person after person, each in time order), with the
/// households that share a number.
pub struct SimRun {
    pub cfg: SimConfig,
    pub events: Vec<SimEvent>,
    pub households: Vec<Household>,
}

/// Generates `persons` retail customers with `family` and `recycled` shares of households
/// sharing a number.
pub fn generate(persons: u64, seed: u64, family: f64, recycled: f64) -> SimRun {
    let mut cfg = SimConfig::new(TemplateKind::Retail, persons, seed);
    cfg.phones.family = family;
    cfg.phones.recycled = recycled;
    let mut stream = touchline_sim::events(cfg.clone()).expect("a valid configuration");
    let mut events = Vec::new();
    while let Some(truth) = stream.next_with_truth() {
        if let Some(event) = sim_event(&truth) {
            events.push(event);
        }
    }
    let households = (0..persons)
        .step_by(2)
        .filter_map(|idx| household_of(&cfg, idx))
        .collect();
    SimRun {
        cfg,
        events,
        households,
    }
}

fn sim_event(truth: &TruthEvent) -> Option<SimEvent> {
    let person = truth.person.as_ref()?.get(1..)?.parse::<u64>().ok()?;
    let event = &truth.event;
    let top = [
        ("anonymous_id", event.anonymous_id.as_deref()),
        ("user_id", event.user_id.as_deref()),
    ];
    // A top-level id the identifier list repeats is one identifier (as
    // governance reads it), not two.
    let repeated = |kind: &str, value: &str| {
        event
            .identifiers
            .iter()
            .any(|i| i.kind == kind && i.value.trim() == value.trim())
    };
    let candidates = top
        .into_iter()
        .filter_map(|(kind, value)| Some((kind, value?, "")))
        .filter(|(kind, value, _)| !repeated(kind, value))
        .chain(
            event
                .identifiers
                .iter()
                .map(|i| (i.kind, i.value.as_str(), i.scope.unwrap_or_default())),
        );
    let mut identifiers: Vec<Identifier> = Vec::new();
    let mut phones = Vec::new();
    for (kind, value, scope) in candidates {
        let value = value.trim();
        if value.is_empty() || PLACEHOLDERS.contains(&value) {
            continue;
        }
        let stored = match kind {
            "phone" => {
                let b = value.as_bytes();
                let valid = b.len() == 11
                    && b[0] == b'1'
                    && (b'3'..=b'9').contains(&b[1])
                    && b.iter().all(u8::is_ascii_digit);
                if !valid {
                    continue;
                }
                let e164 = format!("+86{value}");
                phones.push(e164.clone());
                pseudonym(&format!("phone:{e164}"))
            }
            "email" => pseudonym(&format!("email:{}", value.to_lowercase())),
            _ => value.to_owned(),
        };
        let id = Identifier {
            r#type: kind.to_owned(),
            value: stored,
            scope: scope.to_owned(),
        };
        if !identifiers.contains(&id) {
            identifiers.push(id);
        }
    }
    if identifiers.is_empty() {
        return None;
    }
    Some(SimEvent {
        item: pb::ResolveItem {
            identifiers,
            observed_at: Some(prost_types::Timestamp {
                seconds: truth.true_ms.div_euclid(1_000),
                nanos: i32::try_from(truth.true_ms.rem_euclid(1_000) * 1_000_000).unwrap_or(0),
            }),
            evidence_message_id: event.message_id.clone(),
        },
        person,
        phones,
    })
}

/// Resolves `events` in order: consecutive calls of at most 1,000 identifiers, `in_flight`
/// of them at once, the cache invalidations relayed after each wave. Returns the person of
/// each event ("" when unresolved).
pub async fn resolve_all(
    api: &IdentityApi,
    tenant: &str,
    events: &[SimEvent],
    in_flight: usize,
) -> Vec<String> {
    let mut calls: Vec<std::ops::Range<usize>> = Vec::new();
    let (mut start, mut ids) = (0, 0);
    for (i, event) in events.iter().enumerate() {
        let n = event.item.identifiers.len();
        if ids + n > MAX_IDENTIFIERS_PER_CALL {
            calls.push(start..i);
            (start, ids) = (i, 0);
        }
        ids += n;
    }
    calls.push(start..events.len());
    let mut out = Vec::with_capacity(events.len());
    for wave in calls.chunks(in_flight.max(1)) {
        let replies = futures::future::join_all(wave.iter().map(|range| {
            let items = events[range.clone()]
                .iter()
                .map(|e| e.item.clone())
                .collect();
            resolve(api, tenant, items)
        }))
        .await;
        for reply in replies {
            out.extend(reply.into_iter().map(|r| r.person_id));
        }
        // The relay keeps up, as it does beside a serving process: what the
        // calls moved is invalidated before the next ones read the cache.
        api.relay()
            .drain()
            .await
            .expect("relay the cache invalidations");
    }
    out
}

/// Pairwise scores of a clustering of events against their true persons.
#[derive(Debug, Clone, Copy)]
pub struct Scores {
    pub precision: f64,
    pub recall: f64,
    pub resolved: usize,
}

/// Scores `persons` (one per event, "" for none) against the truth of `events`.
pub fn score(events: &[SimEvent], persons: &[String]) -> Scores {
    let mut cells: HashMap<(&str, u64), u64> = HashMap::new();
    let mut predicted: HashMap<&str, u64> = HashMap::new();
    let mut truth: HashMap<u64, u64> = HashMap::new();
    let mut resolved = 0;
    for (event, person) in events.iter().zip(persons) {
        *truth.entry(event.person).or_default() += 1;
        if person.is_empty() {
            continue;
        }
        resolved += 1;
        *cells.entry((person.as_str(), event.person)).or_default() += 1;
        *predicted.entry(person.as_str()).or_default() += 1;
    }
    let pairs = |n: &u64| (n * n.saturating_sub(1) / 2) as f64;
    let together: f64 = cells.values().map(pairs).sum();
    let predicted: f64 = predicted.values().map(pairs).sum();
    let true_pairs: f64 = truth.values().map(pairs).sum();
    Scores {
        precision: if predicted > 0.0 {
            together / predicted
        } else {
            1.0
        },
        recall: if true_pairs > 0.0 {
            together / true_pairs
        } else {
            1.0
        },
        resolved,
    }
}

/// The true persons behind each predicted person.
pub fn members(events: &[SimEvent], persons: &[String]) -> BTreeMap<String, BTreeSet<u64>> {
    let mut out: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
    for (event, person) in events.iter().zip(persons) {
        if !person.is_empty() {
            out.entry(person.clone()).or_default().insert(event.person);
        }
    }
    out
}

/// The identifiers of `tenant` grouped by person, as a comparable partition.
pub async fn partition(pool: &sqlx::PgPool, tenant: &str) -> BTreeSet<BTreeSet<String>> {
    let rows: Vec<(uuid::Uuid, String, String, String)> = sqlx::query_as(
        "SELECT person_id, id_type, id_scope, id_value FROM identity.identifiers
          WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_all(pool)
    .await
    .expect("identifiers");
    let mut groups: HashMap<uuid::Uuid, BTreeSet<String>> = HashMap::new();
    for (person, id_type, scope, value) in rows {
        groups
            .entry(person)
            .or_default()
            .insert(format!("{id_type}/{scope}/{value}"));
    }
    groups.into_values().collect()
}
