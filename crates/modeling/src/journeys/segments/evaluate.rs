//! Who a segment's rule selects over one view: the rule bound to the tenant's dictionaries
//! (`compile`), then every person's events tested against it on every core (`members`).
//!
//! Besides the members, an evaluation says when time alone could next change the answer: a
//! rolling window ("in the last 30 days") changes when its oldest counted event leaves it, or
//! when an event stamped in the future enters it. The membership worker evaluates again at
//! that instant, so "no purchase in 30 days" takes the person in on day 31 with no new event.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use chrono::TimeZone;
use chrono_tz::Tz;
use touchline_analytics::lifecycle::LifecycleStage;
use touchline_projection::Event;
use touchline_projection::query::Condition;
use uuid::Uuid;

use super::conditions::{credited, dropped_off};
use super::rule::{
    Aggregation, Attributed, ChurnTest, Comparison, DropOff, IdentifierHeld, Rule, SEEN_FIELDS,
    Window, time_value,
};
use crate::journeys::churn::ChurnTable;
use crate::journeys::compile::{self, Known};
use crate::journeys::properties;
use crate::journeys::query::FieldFilter;
use crate::journeys::query::Violations;
use crate::journeys::{RunContext, TenantView};
use touchline_projection::{CodeSet, MISSING};

/// A rule bound to one view's dictionaries and to the members of the segments it names.
#[derive(Debug, Clone)]
pub enum Compiled {
    /// Every sub-rule holds.
    AllOf(Vec<Compiled>),
    /// Some sub-rule holds.
    AnyOf(Vec<Compiled>),
    /// The sub-rule does not hold.
    Not(Box<Compiled>),
    /// An aggregate of matching events in a window.
    Events {
        /// The events.
        condition: Condition,
        /// How they become a number.
        aggregation: Aggregation,
        /// What the number must pass.
        comparison: Comparison,
        /// Which events count.
        window: Window,
    },
    /// The person's churn outputs.
    Churn(ChurnTest),
    /// Membership of another segment, as just evaluated.
    Member(Arc<HashSet<Uuid>>),
    /// The person's lifecycle stage is one of these.
    Lifecycle(Vec<LifecycleStage>),
    /// The person's RFM segment is one of these (contract numbers).
    Rfm(Vec<u8>),
    /// The value of a trait slot on the person's latest event carrying one (the missing
    /// value when none does) is one of these codes.
    Trait {
        /// The slot.
        slot: usize,
        /// The accepted codes.
        codes: CodeSet,
    },
    /// The person's first (or last) event time, as ms text, meets the filter (its values
    /// already ms text).
    Seen {
        /// First seen (true) or last seen.
        first: bool,
        /// The filter.
        filter: FieldFilter,
    },
}

/// What a rule reads besides the person's own events.
#[derive(Debug, Clone, Copy)]
pub struct Context<'a> {
    /// The evaluation instant (ms).
    pub now_ms: i64,
    /// The time zone distinct days are counted in.
    pub zone: Tz,
    /// The churn outputs, when a rule needs them.
    pub churn: Option<&'a ChurnTable>,
    /// Every person's lifecycle stage, when a rule needs them.
    pub lifecycle: Option<&'a HashMap<Uuid, LifecycleStage>>,
    /// Every scored person's RFM segment (contract number), when a rule needs them.
    pub rfm: Option<&'a HashMap<Uuid, u8>>,
    /// The persons holding each identifier type the rules name; a type missing here (or
    /// `None`) is held by nobody.
    pub holders: Option<&'a HashMap<IdentifierHeld, Arc<HashSet<Uuid>>>>,
}

impl Context<'_> {
    /// The persons holding an identifier of `held`'s type (and scope).
    fn holders_of(&self, held: &IdentifierHeld) -> Arc<HashSet<Uuid>> {
        self.holders
            .and_then(|h| h.get(held).cloned())
            .unwrap_or_default()
    }
}

/// Finds the persons a drop-off condition selects; problems go under the given path.
pub type DroppedOff<'a> = dyn Fn(&DropOff, &str, &mut Violations) -> Arc<HashSet<Uuid>> + 'a;
/// Finds the persons an attributed-channel condition selects; problems go under the path.
pub type Credited<'a> = dyn Fn(&Attributed, &str, &mut Violations) -> Arc<HashSet<Uuid>> + 'a;

/// What a rule is bound with besides the view's dictionaries: the members of a named
/// segment (`None` for one that does not exist, which selects nobody), and the persons a
/// funnel drop-off condition selects (see [`dropped_off`]).
pub struct Lookups<'a> {
    /// Members of a segment, by id.
    pub members: &'a dyn Fn(&str) -> Option<Arc<HashSet<Uuid>>>,
    /// Persons who dropped off, for a condition at a request path.
    pub dropped: &'a DroppedOff<'a>,
    /// Persons whose conversions credit a channel, for a condition at a request path.
    pub credited: &'a Credited<'a>,
    /// Persons holding an identifier of a type.
    pub holders: &'a dyn Fn(&IdentifierHeld) -> Arc<HashSet<Uuid>>,
}

/// Binds `rule` to `known`'s dictionaries and `lookups`. Unknown event names are reported in
/// `problems` and select nobody.
pub fn compile(
    rule: &Rule,
    known: Known<'_>,
    lookups: &Lookups<'_>,
    path: &str,
    problems: &mut Violations,
) -> Compiled {
    match rule {
        Rule::AllOf(rules) => Compiled::AllOf(
            rules
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    compile(
                        r,
                        known,
                        lookups,
                        &format!("{path}.all_of.rules[{i}]"),
                        problems,
                    )
                })
                .collect(),
        ),
        Rule::AnyOf(rules) => Compiled::AnyOf(
            rules
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    compile(
                        r,
                        known,
                        lookups,
                        &format!("{path}.any_of.rules[{i}]"),
                        problems,
                    )
                })
                .collect(),
        ),
        Rule::Not(rule) => Compiled::Not(Box::new(compile(
            rule,
            known,
            lookups,
            &format!("{path}.negation"),
            problems,
        ))),
        Rule::Events(events) => Compiled::Events {
            condition: compile::condition(
                known,
                &events.matcher,
                &format!("{path}.event_aggregate.event"),
                problems,
            ),
            aggregation: events.aggregation,
            comparison: events.comparison,
            window: events.window,
        },
        Rule::Churn(test) => Compiled::Churn(*test),
        Rule::Member(id) => Compiled::Member((lookups.members)(id).unwrap_or_default()),
        Rule::Trait(filter) => person_test(filter, known, &format!("{path}.trait"), problems),
        Rule::AttributedChannel(attributed) => Compiled::Member((lookups.credited)(
            attributed,
            &format!("{path}.attributed_channel"),
            problems,
        )),
        Rule::FunnelDropOff(drop) => Compiled::Member((lookups.dropped)(
            drop,
            &format!("{path}.funnel_drop_off"),
            problems,
        )),
        Rule::Lifecycle(stages) => Compiled::Lifecycle(stages.clone()),
        Rule::Rfm(segments) => Compiled::Rfm(segments.clone()),
        Rule::Identifier(held) => Compiled::Member((lookups.holders)(held)),
    }
}

/// A trait condition bound to the view: a trait the view keeps as a slot, or a seen time.
fn person_test(
    filter: &FieldFilter,
    known: Known<'_>,
    path: &str,
    problems: &mut Violations,
) -> Compiled {
    if SEEN_FIELDS.contains(&filter.field.as_str()) {
        let mut filter = filter.clone();
        for value in &mut filter.values {
            *value = time_value(value).unwrap_or_default().to_string();
        }
        return Compiled::Seen {
            first: filter.field == SEEN_FIELDS[0],
            filter,
        };
    }
    let slot = properties::trait_name_of(&filter.field)
        .and_then(|name| properties::slot(known.properties, properties::TRAITS_PREFIX, name));
    let dictionary = slot.and_then(|slot| known.projection.dictionaries().properties.get(slot));
    match (slot, dictionary) {
        (Some(slot), Some(dictionary)) => Compiled::Trait {
            slot,
            codes: compile::matching_codes(dictionary, filter),
        },
        _ => {
            problems.add(
                format!("{path}.filter.field"),
                "NOT_ANALYSABLE",
                format!(
                    "{} is not analysable: add it to the model settings' analysable_properties / 该特征未设为可分析",
                    filter.field
                ),
            );
            Compiled::AnyOf(Vec::new())
        }
    }
}

/// Who a rule selects, and when time alone could next change that.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Evaluation {
    /// The persons selected, by id.
    pub members: Vec<Uuid>,
    /// The earliest instant (ms) a rolling window could change a person's answer without a
    /// new event; `None` when no window rolls.
    pub next_due_ms: Option<i64>,
}

pub(super) fn earliest(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, None) => a,
        (None, b) => b,
    }
}

/// The aggregate of `events` under one condition and window, and when the window next moves.
fn aggregate(
    events: &[Event],
    condition: &Condition,
    aggregation: Aggregation,
    window: Window,
    context: &Context<'_>,
) -> (Option<f64>, Option<i64>) {
    let now = context.now_ms;
    let mut due = None;
    let (mut count, mut sum, mut valued) = (0u64, 0.0f64, 0u64);
    let (mut min, mut max) = (f64::INFINITY, f64::NEG_INFINITY);
    let mut days = BTreeSet::new();
    for event in events.iter().filter(|e| compile::matches(condition, e)) {
        let counted = match window {
            Window::Last { ms } => {
                if event.time_ms > now {
                    // Enters the window when its time comes.
                    due = earliest(due, Some(event.time_ms));
                    false
                } else if event.time_ms > now.saturating_sub(ms) {
                    // Counted while `now − ms < time`: it leaves the window at `time + ms`.
                    due = earliest(due, Some(event.time_ms.saturating_add(ms)));
                    true
                } else {
                    false
                }
            }
            Window::Range { start_ms, end_ms } => {
                start_ms <= event.time_ms && event.time_ms < end_ms
            }
        };
        if !counted {
            continue;
        }
        count += 1;
        if let Some(value) = event.value.filter(|v| v.is_finite()) {
            sum += value;
            valued += 1;
            min = min.min(value);
            max = max.max(value);
        }
        if aggregation == Aggregation::DistinctDays
            && let Some(local) = context.zone.timestamp_millis_opt(event.time_ms).single()
        {
            days.insert(local.date_naive());
        }
    }
    let value = match aggregation {
        Aggregation::Count => Some(count as f64),
        Aggregation::Sum => Some(sum),
        Aggregation::Average => (valued > 0).then(|| sum / valued as f64),
        Aggregation::Min => (valued > 0).then_some(min),
        Aggregation::Max => (valued > 0).then_some(max),
        Aggregation::DistinctDays => Some(days.len() as f64),
    };
    (value, due)
}

/// Whether `rule` holds for one person (`person`, with `events` in time order), and when a
/// rolling window of it next moves.
pub fn holds(
    rule: &Compiled,
    person: Uuid,
    events: &[Event],
    context: &Context<'_>,
) -> (bool, Option<i64>) {
    match rule {
        Compiled::AllOf(rules) => rules.iter().fold((true, None), |(all, due), r| {
            let (held, next) = holds(r, person, events, context);
            (all && held, earliest(due, next))
        }),
        Compiled::AnyOf(rules) => rules.iter().fold((false, None), |(any, due), r| {
            let (held, next) = holds(r, person, events, context);
            (any || held, earliest(due, next))
        }),
        Compiled::Not(rule) => {
            let (held, due) = holds(rule, person, events, context);
            (!held, due)
        }
        Compiled::Events {
            condition,
            aggregation,
            comparison,
            window,
        } => {
            let (value, due) = aggregate(events, condition, *aggregation, *window, context);
            (value.is_some_and(|v| comparison.holds(v)), due)
        }
        Compiled::Churn(test) => {
            let row = context.churn.and_then(|table| table.row(&person));
            let held = match test {
                ChurnTest::Score(comparison) => row
                    .and_then(|r| r.score)
                    .is_some_and(|s| comparison.holds(s)),
                ChurnTest::Churned(wanted) => row.is_some_and(|r| r.churned) == *wanted,
            };
            (held, None)
        }
        Compiled::Member(members) => (members.contains(&person), None),
        Compiled::Lifecycle(stages) => {
            let stage = context.lifecycle.and_then(|all| all.get(&person));
            (stage.is_some_and(|s| stages.contains(s)), None)
        }
        Compiled::Rfm(segments) => {
            let segment = context.rfm.and_then(|all| all.get(&person));
            (segment.is_some_and(|s| segments.contains(s)), None)
        }
        Compiled::Trait { slot, codes } => {
            let latest = events
                .iter()
                .rev()
                .map(|e| e.properties.get(*slot).copied().unwrap_or(MISSING))
                .find(|code| *code != MISSING)
                .unwrap_or(MISSING);
            (codes.contains(latest), None)
        }
        Compiled::Seen { first, filter } => {
            let at = if *first {
                events.first()
            } else {
                events.last()
            };
            let held = at.is_some_and(|e| compile::accepts_text(filter, &e.time_ms.to_string()));
            (held, None)
        }
    }
}

/// Every person of `view` that `rule` selects, on up to `threads` threads.
pub fn members(
    view: &TenantView,
    rule: &Compiled,
    context: &Context<'_>,
    threads: usize,
) -> Evaluation {
    let states = view.projection.scan(
        threads,
        || (Vec::new(), None, Vec::new()),
        |(selected, due, buffer): &mut (Vec<Uuid>, Option<i64>, Vec<Event>), person| {
            let Some(id) = view.persons.id(person.person()) else {
                return Ok::<(), ()>(());
            };
            buffer.clear();
            buffer.extend(person.iter().map(|e| e.to_event()));
            if buffer.is_empty() {
                return Ok(());
            }
            let (held, next) = holds(rule, id, buffer, context);
            if held {
                selected.push(id);
            }
            *due = earliest(*due, next);
            Ok(())
        },
    );
    let mut evaluation = Evaluation::default();
    for (selected, due, _) in states.unwrap_or_default() {
        evaluation.members.extend(selected);
        evaluation.next_due_ms = earliest(evaluation.next_due_ms, due);
    }
    evaluation.members.sort_unstable();
    evaluation
}

/// The view a condition that reads the whole view is evaluated over, and when.
#[derive(Debug, Clone, Copy)]
pub struct ViewAt<'a> {
    /// The tenant's view.
    pub view: &'a TenantView,
    /// The event names the tenant's dictionary defines.
    pub defined: &'a [String],
    /// The evaluation instant (ms).
    pub now_ms: i64,
    /// Threads it may use.
    pub threads: usize,
}

impl ViewAt<'_> {
    pub(super) fn run(&self) -> RunContext {
        RunContext {
            defined: self.defined.to_vec(),
            threads: self.threads,
            ..RunContext::default()
        }
    }

    pub(super) fn ids(&self, keys: impl Iterator<Item = u64>) -> Arc<HashSet<Uuid>> {
        Arc::new(keys.filter_map(|key| self.view.persons.id(key)).collect())
    }
}

/// Evaluates `segments` (id, rule) in the given order over one view, each seeing the members
/// just found for the segments before it; `stored` gives the members of a named segment
/// outside the set. A rule naming an event nobody has is logged and selects nobody for it.
pub fn evaluate_in_order(
    view: &TenantView,
    segments: &[(String, Rule)],
    stored: &dyn Fn(&str) -> Option<Arc<HashSet<Uuid>>>,
    defined: &[String],
    context: &Context<'_>,
    threads: usize,
) -> Vec<(String, Evaluation)> {
    let at = ViewAt {
        view,
        defined,
        now_ms: context.now_ms,
        threads,
    };
    let mut found: std::collections::HashMap<String, Arc<HashSet<Uuid>>> =
        std::collections::HashMap::new();
    let mut out = Vec::with_capacity(segments.len());
    for (id, rule) in segments {
        let known = Known::new(view, defined);
        let mut problems = Violations::default();
        let lookup = |name: &str| found.get(name).cloned().or_else(|| stored(name));
        let due = std::cell::Cell::new(None);
        let dropped = |drop: &DropOff, path: &str, problems: &mut Violations| {
            dropped_off(&at, drop, path, problems, &due)
        };
        let credits = |attributed: &Attributed, path: &str, problems: &mut Violations| {
            credited(&at, attributed, path, problems)
        };
        let holders = |held: &IdentifierHeld| context.holders_of(held);
        let lookups = Lookups {
            members: &lookup,
            dropped: &dropped,
            credited: &credits,
            holders: &holders,
        };
        let compiled = compile(rule, known, &lookups, "rule", &mut problems);
        if !problems.is_empty() {
            tracing::warn!(segment = %id, problems = ?problems.0, "a segment rule names what the tenant no longer has");
        }
        let mut evaluation = members(view, &compiled, context, threads);
        evaluation.next_due_ms = earliest(evaluation.next_due_ms, due.get());
        found.insert(
            id.clone(),
            Arc::new(evaluation.members.iter().copied().collect()),
        );
        out.push((id.clone(), evaluation));
    }
    out
}

/// Who one rule selects over `view`, or the names it uses that the tenant does not have.
pub fn preview(
    view: &TenantView,
    rule: &Rule,
    stored: &dyn Fn(&str) -> Option<Arc<HashSet<Uuid>>>,
    defined: &[String],
    context: &Context<'_>,
    threads: usize,
) -> Result<Evaluation, Violations> {
    let at = ViewAt {
        view,
        defined,
        now_ms: context.now_ms,
        threads,
    };
    let known = Known::new(view, defined);
    let mut problems = Violations::default();
    let due = std::cell::Cell::new(None);
    let dropped = |drop: &DropOff, path: &str, problems: &mut Violations| {
        dropped_off(&at, drop, path, problems, &due)
    };
    let credits = |attributed: &Attributed, path: &str, problems: &mut Violations| {
        credited(&at, attributed, path, problems)
    };
    let holders = |held: &IdentifierHeld| context.holders_of(held);
    let lookups = Lookups {
        members: stored,
        dropped: &dropped,
        credited: &credits,
        holders: &holders,
    };
    let compiled = compile(rule, known, &lookups, "segment.rule", &mut problems);
    if problems.is_empty() {
        Ok(members(view, &compiled, context, threads))
    } else {
        Err(problems)
    }
}
