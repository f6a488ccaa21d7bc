//! A segment's rule as the service holds it: a tree of conditions combined with and / or /
//! not, free of the contract's types, and the checks every rule must pass before it is kept.

use std::collections::BTreeSet;

use touchline_analytics::lifecycle::LifecycleStage;

use super::conditions::check_trait;
pub use super::conditions::{
    Attributed, DEFAULT_ATTRIBUTED_WITHIN_MS, DropOff, MAX_DROP_OFF_WINDOW_MS, SEEN_FIELDS,
    time_value,
};
use crate::journeys::query::{FieldFilter, Matcher, Violations, check_matcher};

/// Deepest a rule tree may nest (the contract's limit).
pub const MAX_DEPTH: usize = 10;
/// Most conditions (leaves) one rule may hold.
pub const MAX_CONDITIONS: usize = 100;
/// Longest rolling window: three years.
pub const MAX_WINDOW_MS: i64 = 3 * 366 * 86_400_000;
/// Shortest rolling window. Short windows exist for tests and near-real-time rules
/// ("no visit in the last 10 minutes"); a window shorter than a second says nothing the
/// membership worker could act on in time.
pub const MIN_WINDOW_MS: i64 = 1_000;

/// How a number is compared.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Comparison {
    /// `= v`.
    Equals(f64),
    /// `≠ v`.
    NotEquals(f64),
    /// `> v`.
    Greater(f64),
    /// `≥ v`.
    AtLeast(f64),
    /// `< v`.
    Less(f64),
    /// `≤ v`.
    AtMost(f64),
    /// `lower ≤ x ≤ upper`.
    Between(f64, f64),
}

impl Comparison {
    /// Whether `x` passes.
    pub fn holds(self, x: f64) -> bool {
        match self {
            Comparison::Equals(v) => x == v,
            Comparison::NotEquals(v) => x != v,
            Comparison::Greater(v) => x > v,
            Comparison::AtLeast(v) => x >= v,
            Comparison::Less(v) => x < v,
            Comparison::AtMost(v) => x <= v,
            Comparison::Between(lower, upper) => lower <= x && x <= upper,
        }
    }
}

/// How the events of a window become one number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregation {
    /// Matching events (0 without any).
    Count,
    /// Sum of their values (0 without any).
    Sum,
    /// Mean value (persons without a valued event never match).
    Average,
    /// Smallest value (same).
    Min,
    /// Largest value (same).
    Max,
    /// Distinct days with a matching event, in the settings' time zone.
    DistinctDays,
}

/// Which events count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Window {
    /// Those in the last `ms` before the evaluation (rolling: time alone changes the answer).
    Last {
        /// The length.
        ms: i64,
    },
    /// Those in `[start_ms, end_ms)`.
    Range {
        /// First included instant.
        start_ms: i64,
        /// First excluded instant.
        end_ms: i64,
    },
}

/// A condition on an aggregate of the person's events in a window.
#[derive(Debug, Clone, PartialEq)]
pub struct EventAggregate {
    /// The events.
    pub matcher: Matcher,
    /// How they are aggregated.
    pub aggregation: Aggregation,
    /// The comparison the aggregate must pass.
    pub comparison: Comparison,
    /// The window.
    pub window: Window,
}

/// A condition on the person's churn outputs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ChurnTest {
    /// A comparison on 1 − P(alive); persons without a score never match.
    Score(Comparison),
    /// Flagged churned by their inactivity rule (true) or not (false).
    Churned(bool),
}

/// A node of a rule.
#[derive(Debug, Clone, PartialEq)]
pub enum Rule {
    /// Every sub-rule holds.
    AllOf(Vec<Rule>),
    /// Some sub-rule holds.
    AnyOf(Vec<Rule>),
    /// The sub-rule does not hold.
    Not(Box<Rule>),
    /// An aggregate of the person's events.
    Events(EventAggregate),
    /// The person's churn outputs.
    Churn(ChurnTest),
    /// Membership of another segment of the tenant, by id.
    Member(String),
    /// The person's current lifecycle stage is one of these (under the model settings).
    Lifecycle(Vec<LifecycleStage>),
    /// The person's RFM segment is one of these, by the contract's number (under the model
    /// settings).
    Rfm(Vec<u8>),
    /// The person dropped at a step of a funnel.
    FunnelDropOff(DropOff),
    /// The person's conversions credit a channel.
    AttributedChannel(Box<Attributed>),
    /// An attribute of the person: a trait (`traits.{name}`, the value of the latest event
    /// carrying it), `first_seen_time` or `last_seen_time` (their earliest and latest
    /// stored events).
    Trait(FieldFilter),
    /// The person holds an identifier of a type (and scope, when not empty).
    Identifier(IdentifierHeld),
}

/// An identifier type a person holds, optionally within one scope.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct IdentifierHeld {
    /// The type, e.g. `member_card`.
    pub id_type: String,
    /// The scope (a WeChat app id); empty means any.
    pub scope: String,
}

impl Rule {
    /// The ids of the segments this rule names directly.
    pub fn referenced_segments(&self) -> BTreeSet<String> {
        let mut found = BTreeSet::new();
        self.visit(&mut |rule| {
            if let Rule::Member(id) = rule {
                found.insert(id.clone());
            }
        });
        found
    }

    /// Whether any condition needs the churn table.
    pub fn uses_churn(&self) -> bool {
        let mut uses = false;
        self.visit(&mut |rule| uses |= matches!(rule, Rule::Churn(_)));
        uses
    }

    /// The identifier conditions the rule names, each once.
    pub fn identifiers_held(&self) -> BTreeSet<IdentifierHeld> {
        let mut found = BTreeSet::new();
        self.visit(&mut |rule| {
            if let Rule::Identifier(held) = rule {
                found.insert(held.clone());
            }
        });
        found
    }

    /// Whether any condition needs lifecycle stages.
    pub fn uses_lifecycle(&self) -> bool {
        let mut uses = false;
        self.visit(&mut |rule| uses |= matches!(rule, Rule::Lifecycle(_)));
        uses
    }

    /// Whether any condition needs RFM segments.
    pub fn uses_rfm(&self) -> bool {
        let mut uses = false;
        self.visit(&mut |rule| uses |= matches!(rule, Rule::Rfm(_)));
        uses
    }

    /// The event names the rule's conditions name.
    pub fn event_names(&self) -> Vec<String> {
        let mut names = Vec::new();
        self.visit(&mut |rule| match rule {
            Rule::Events(events) if !events.matcher.event_name.is_empty() => {
                names.push(events.matcher.event_name.clone());
            }
            Rule::AttributedChannel(attributed) => names.extend(
                attributed
                    .query
                    .conversion
                    .iter()
                    .chain(&attributed.query.touchpoints)
                    .map(|m| m.event_name.clone())
                    .filter(|name| !name.is_empty()),
            ),
            Rule::FunnelDropOff(drop) => names.extend(
                drop.funnel
                    .steps
                    .iter()
                    .filter_map(|step| step.event.as_ref())
                    .chain(
                        drop.funnel
                            .exclusions
                            .iter()
                            .filter_map(|e| e.event.as_ref()),
                    )
                    .map(|matcher| matcher.event_name.clone())
                    .filter(|name| !name.is_empty()),
            ),
            _ => {}
        });
        names
    }

    fn visit(&self, f: &mut impl FnMut(&Rule)) {
        f(self);
        match self {
            Rule::AllOf(rules) | Rule::AnyOf(rules) => rules.iter().for_each(|r| r.visit(f)),
            Rule::Not(rule) => rule.visit(f),
            Rule::Events(_)
            | Rule::Churn(_)
            | Rule::Member(_)
            | Rule::Lifecycle(_)
            | Rule::Rfm(_)
            | Rule::FunnelDropOff(_)
            | Rule::AttributedChannel(_)
            | Rule::Trait(_)
            | Rule::Identifier(_) => {}
        }
    }

    /// Checks the shape every rule must have: depth, size, groups with members, windows and
    /// comparisons in range. Names (events, segments) are checked against the tenant later.
    pub fn check(&self, path: &str, problems: &mut Violations) {
        let mut conditions = 0;
        self.check_node(path, 1, &mut conditions, problems);
        if conditions > MAX_CONDITIONS {
            problems.add(
                path,
                "RULE_TOO_LARGE",
                format!("{conditions} conditions; at most {MAX_CONDITIONS}"),
            );
        }
    }

    fn check_node(
        &self,
        path: &str,
        depth: usize,
        conditions: &mut usize,
        problems: &mut Violations,
    ) {
        if depth > MAX_DEPTH {
            problems.add(
                path,
                "RULE_TOO_DEEP",
                format!("rules nest at most {MAX_DEPTH} levels"),
            );
            return;
        }
        match self {
            Rule::AllOf(rules) | Rule::AnyOf(rules) => {
                let kind = if matches!(self, Rule::AllOf(_)) {
                    "all_of"
                } else {
                    "any_of"
                };
                if rules.is_empty() {
                    problems.add(
                        format!("{path}.{kind}.rules"),
                        "REQUIRED",
                        "a group needs at least one rule",
                    );
                }
                for (index, rule) in rules.iter().enumerate() {
                    rule.check_node(
                        &format!("{path}.{kind}.rules[{index}]"),
                        depth + 1,
                        conditions,
                        problems,
                    );
                }
            }
            Rule::Not(rule) => {
                rule.check_node(&format!("{path}.negation"), depth + 1, conditions, problems)
            }
            leaf => {
                *conditions += 1;
                leaf.check_leaf(path, problems);
            }
        }
    }

    /// Checks one condition (a node that is not a group).
    fn check_leaf(&self, path: &str, problems: &mut Violations) {
        match self {
            Rule::Events(events) => {
                check_events(events, &format!("{path}.event_aggregate"), problems);
            }
            Rule::Churn(test) => {
                if let ChurnTest::Score(comparison) = test {
                    check_comparison(*comparison, &format!("{path}.churn.score"), problems);
                }
            }
            Rule::Lifecycle(stages) => {
                if stages.is_empty() {
                    problems.add(
                        format!("{path}.lifecycle_stage.stages"),
                        "REQUIRED",
                        "name at least one stage",
                    );
                }
            }
            Rule::Rfm(segments) => {
                if segments.is_empty() {
                    problems.add(
                        format!("{path}.rfm_segment.segments"),
                        "REQUIRED",
                        "name at least one RFM segment",
                    );
                }
            }
            Rule::FunnelDropOff(drop) => {
                drop.check(&format!("{path}.funnel_drop_off"), problems);
            }
            Rule::Trait(filter) => {
                check_trait(filter, &format!("{path}.trait"), problems);
            }
            Rule::AttributedChannel(attributed) => {
                attributed.check(&format!("{path}.attributed_channel"), problems);
            }
            Rule::Member(id) => {
                if id.is_empty() {
                    problems.add(
                        format!("{path}.segment_membership.segment"),
                        "REQUIRED",
                        "name the segment as tenants/{tenant}/segments/{segment}",
                    );
                }
            }
            Rule::Identifier(held) => {
                let text = |t: &str| !t.is_empty() && t.chars().count() <= 64 && !t.contains('\0');
                if !text(held.id_type.trim()) {
                    problems.add(
                        format!("{path}.identifier.type"),
                        "REQUIRED",
                        "an identifier type of 1–64 characters, e.g. member_card",
                    );
                }
                if held.scope.chars().count() > 256 || held.scope.contains('\0') {
                    problems.add(
                        format!("{path}.identifier.scope"),
                        "INVALID_SCOPE",
                        "a scope of at most 256 characters, e.g. a WeChat app id",
                    );
                }
            }
            Rule::AllOf(_) | Rule::AnyOf(_) | Rule::Not(_) => {}
        }
    }
}

fn check_comparison(comparison: Comparison, path: &str, problems: &mut Violations) {
    let finite = |v: f64| v.is_finite();
    let ok = match comparison {
        Comparison::Between(lower, upper) => finite(lower) && finite(upper) && lower <= upper,
        Comparison::Equals(v)
        | Comparison::NotEquals(v)
        | Comparison::Greater(v)
        | Comparison::AtLeast(v)
        | Comparison::Less(v)
        | Comparison::AtMost(v) => finite(v),
    };
    if !ok {
        problems.add(
            path,
            "INVALID_COMPARISON",
            "values must be finite numbers, and BETWEEN's lower bound at most its upper",
        );
    }
}

fn check_events(events: &EventAggregate, path: &str, problems: &mut Violations) {
    check_matcher(Some(&events.matcher), &format!("{path}.event"), problems);
    check_comparison(events.comparison, &format!("{path}.comparison"), problems);
    match events.window {
        Window::Last { ms } if !(MIN_WINDOW_MS..=MAX_WINDOW_MS).contains(&ms) => problems.add(
            format!("{path}.within_last"),
            "OUT_OF_RANGE",
            "from 1 second to 3 years",
        ),
        Window::Range { start_ms, end_ms } if start_ms >= end_ms => problems.add(
            format!("{path}.time_range"),
            "INVALID_RANGE",
            "the range must start before it ends",
        ),
        _ => {}
    }
}

/// The order segments are evaluated in so each sees the members of those it names, or the
/// segments on a cycle. `rules` are (id, names it refers to).
pub fn evaluation_order(rules: &[(String, BTreeSet<String>)]) -> Result<Vec<String>, Vec<String>> {
    let known: BTreeSet<&str> = rules.iter().map(|(id, _)| id.as_str()).collect();
    let mut order: Vec<String> = Vec::with_capacity(rules.len());
    let mut left: Vec<&(String, BTreeSet<String>)> = rules.iter().collect();
    while !left.is_empty() {
        // A reference to a segment outside the set (deleted) blocks nothing: the condition
        // finds no members.
        let (ready, blocked): (Vec<_>, Vec<_>) = left.into_iter().partition(|(_, refs)| {
            refs.iter()
                .all(|r| order.contains(r) || !known.contains(r.as_str()))
        });
        if ready.is_empty() {
            return Err(blocked.iter().map(|(id, _)| id.clone()).collect());
        }
        order.extend(ready.iter().map(|(id, _)| id.clone()));
        left = blocked;
    }
    Ok(order)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count_at_least(n: f64, days: i64) -> Rule {
        Rule::Events(EventAggregate {
            matcher: Matcher {
                event_name: "purchase".into(),
                filters: Vec::new(),
            },
            aggregation: Aggregation::Count,
            comparison: Comparison::AtLeast(n),
            window: Window::Last {
                ms: days * 86_400_000,
            },
        })
    }

    #[test]
    fn depth_size_empty_groups_windows_and_comparisons_are_refused_with_their_paths() {
        let mut deep = count_at_least(1.0, 1);
        for _ in 0..MAX_DEPTH {
            deep = Rule::Not(Box::new(deep));
        }
        let too_many = Rule::AnyOf(
            (0..=MAX_CONDITIONS)
                .map(|_| count_at_least(1.0, 1))
                .collect(),
        );
        let bad_window = count_at_least(1.0, 10_000);
        let nan = Rule::Churn(ChurnTest::Score(Comparison::Greater(f64::NAN)));
        let cases = [
            (deep, "RULE_TOO_DEEP"),
            (too_many, "RULE_TOO_LARGE"),
            (Rule::AllOf(Vec::new()), "REQUIRED"),
            (bad_window, "OUT_OF_RANGE"),
            (nan, "INVALID_COMPARISON"),
            (Rule::Member(String::new()), "REQUIRED"),
        ];
        for (rule, reason) in cases {
            let mut problems = Violations::default();
            rule.check("segment.rule", &mut problems);
            assert!(
                problems.0.iter().any(|v| v.reason == reason),
                "{reason} expected, got {:?}",
                problems.0
            );
        }
        let mut fine = Violations::default();
        Rule::AllOf(vec![
            count_at_least(2.0, 30),
            Rule::Churn(ChurnTest::Churned(true)),
        ])
        .check("segment.rule", &mut fine);
        assert!(fine.is_empty(), "{:?}", fine.0);
    }

    #[test]
    fn segments_are_ordered_after_those_they_name_and_cycles_are_named() {
        let refs = |ids: &[&str]| ids.iter().map(|s| (*s).to_owned()).collect::<BTreeSet<_>>();
        let rules = vec![
            ("c".to_owned(), refs(&["b"])),
            ("b".to_owned(), refs(&["a", "gone"])),
            ("a".to_owned(), refs(&[])),
        ];
        assert_eq!(
            evaluation_order(&rules),
            Ok(vec!["a".into(), "b".into(), "c".into()])
        );
        let cycle = vec![
            ("a".to_owned(), refs(&["b"])),
            ("b".to_owned(), refs(&["a"])),
            ("c".to_owned(), refs(&[])),
        ];
        assert_eq!(evaluation_order(&cycle), Err(vec!["a".into(), "b".into()]));
    }
}
