//! RFM and churn over a tenant's view: each person's purchases (events matching the purchase
//! event, valued by the projection's value) and qualifying activity are gathered in one scan,
//! then handed to the pure models of `touchline_analytics::churn`.
//!
//! Rules chosen where the contract leaves room:
//! - Times are the events' times truncated to whole seconds, as the pure models count them.
//! - A purchase without a value counts with value 0.
//! - Every person of the view with at least one event has a churn row; persons without a
//!   purchase have no score (the contract leaves it unset) and sort after every scored person
//!   in a score listing.
//! - The probability-alive model (BG/NBD or MBG/NBD, as the settings choose) is fitted on each
//!   purchaser's purchases inside the fit window; a person's P(alive) uses all their purchases
//!   up to now (the fit window bounds the fit, not who is scored).
//! - Inactivity: activity is the qualifying events (purchases when none are set). Each person
//!   falls under the first rule whose segment holds them (segment membership as the segment
//!   worker last published it), else the default rule; a rule's threshold is the fixed one or
//!   the suggestion from the purchase gaps of the persons it applies to.

use touchline_analytics::churn::bgnbd::{
    BetaGeoModel, BgNbdParams, CustomerSummary, FitOptions, SummaryBuilder, TimeUnit,
};
use touchline_analytics::churn::inactivity::{
    DEFAULT_FALLBACK_DAYS, InactivityStatus, InactivityThreshold, PurchaseGapSample,
    SuggestionOptions, ThresholdSuggestion, inactivity_status,
};
use touchline_analytics::churn::rfm::{
    Purchase, RfmReport, RfmScores, RfmSegment, RfmThresholds, RfmValues, classify,
    classify_default, rfm_values, score_persons,
};
use touchline_projection::query::{Condition, Dimension, Filter};
use touchline_projection::{CodeSet, PersonEvents};
use uuid::Uuid;

use super::RunContext;
use super::churn_settings::{Effective, EffectiveRule, ModelEvents, RfmOptions};
use super::compile::{self, Known};
use super::query::{Matcher, Violations};
use super::view::TenantView;
use crate::store::journal::Positions;

/// What a purchase is, as asked: a matcher, or the names of the dictionary's conversions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PurchaseEvent {
    /// Events matching this (from the request or the settings).
    Matcher(Matcher),
    /// Any of these events (the dictionary's conversions); none matches nothing.
    Conversions(Vec<String>),
}

/// The purchase condition over `view`. A matcher's unknown event name is a violation of
/// `path` when `strict` (a request's own matcher), else it matches nothing (a setting made
/// before the event was ever sent).
pub fn purchase_condition(
    view: &TenantView,
    purchase: &PurchaseEvent,
    run: &RunContext,
    path: &str,
    strict: bool,
) -> Result<Condition, Violations> {
    let known = Known::new(view, &run.defined);
    let events = &view.projection.dictionaries().events;
    match purchase {
        PurchaseEvent::Matcher(matcher) => {
            if !strict
                && !matcher.event_name.is_empty()
                && events.code(&matcher.event_name).is_none()
            {
                return Ok(compile::nothing());
            }
            let mut problems = Violations::default();
            let condition =
                compile::any_of(known, std::slice::from_ref(matcher), path, &mut problems);
            if problems.is_empty() {
                Ok(condition)
            } else {
                // `any_of` names a single matcher `path[0]`; the contract's field is `path`.
                for violation in &mut problems.0 {
                    if let Some(rest) = violation.field.strip_prefix(&format!("{path}[0]")) {
                        violation.field = format!("{path}{rest}");
                    }
                }
                Err(problems)
            }
        }
        PurchaseEvent::Conversions(names) => {
            let mut codes = CodeSet::default();
            let mut any = false;
            for name in names {
                if let Some(code) = events.code(name) {
                    codes.insert(code);
                    any = true;
                }
            }
            if !any {
                return Ok(compile::nothing());
            }
            Ok(Condition {
                event: None,
                filters: vec![Filter {
                    dimension: Dimension::Event,
                    codes,
                }],
            })
        }
    }
}

/// The qualifying-activity condition of the settings; `None` means purchases.
fn activity_condition(view: &TenantView, qualifying: &[Matcher], run: &RunContext) -> Condition {
    let known = Known::new(view, &run.defined);
    let events = &view.projection.dictionaries().events;
    let stored: Vec<Matcher> = qualifying
        .iter()
        .filter(|m| m.event_name.is_empty() || events.code(&m.event_name).is_some())
        .cloned()
        .collect();
    if stored.is_empty() {
        return compile::nothing();
    }
    let mut problems = Violations::default();
    let condition = compile::any_of(known, &stored, "qualifying_events", &mut problems);
    if problems.is_empty() {
        condition
    } else {
        compile::nothing()
    }
}

/// Seconds of an instant in ms, rounded down.
pub fn secs(ms: i64) -> i64 {
    ms.div_euclid(1_000)
}

/// A person's purchases in time order (value 0 when the event has none).
fn purchases_of(person: &PersonEvents<'_>, purchase: &Condition, out: &mut Vec<Purchase>) {
    out.clear();
    for event in person.iter() {
        let event = event.to_event();
        if compile::matches(purchase, &event) {
            out.push(Purchase {
                time: secs(event.time_ms),
                value: event.value.unwrap_or(0.0),
            });
        }
    }
}

/// One person's RFM result.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PersonRfm {
    /// The person.
    pub person: Uuid,
    /// Their values.
    pub values: RfmValues,
    /// Their scores.
    pub scores: RfmScores,
    /// Their segment.
    pub segment: RfmSegment,
}

/// An RFM run's results.
#[derive(Debug, Clone)]
pub struct RfmRun {
    /// Scored persons, by id.
    pub persons: Vec<PersonRfm>,
    /// Per segment and per cell.
    pub report: RfmReport,
    /// The quantile bounds; `None` when nobody was scored.
    pub thresholds: Option<RfmThresholds>,
    /// Persons with an event the scan visited.
    pub persons_considered: u64,
    /// What the view reflected.
    pub positions: Positions,
}

/// Scores every person with a purchase in `(as_of − lookback, as_of]`.
pub fn run_rfm(
    view: &TenantView,
    purchase: &Condition,
    options: &RfmOptions,
    as_of_ms: i64,
    run: &RunContext,
) -> RfmRun {
    let as_of = secs(as_of_ms);
    let states = view.projection.scan(
        run.threads,
        || (Vec::new(), Vec::new(), 0u64),
        |(values, buffer, considered): &mut (Vec<(Uuid, RfmValues)>, Vec<Purchase>, u64),
         person| {
            let Some(id) = view.persons.id(person.person()) else {
                return Ok::<(), ()>(());
            };
            if person.iter().next().is_none() {
                return Ok(());
            }
            *considered += 1;
            purchases_of(&person, purchase, buffer);
            // Purchase values are finite (the projection keeps only finite values) and the
            // lookback is checked, so the model cannot refuse them.
            if let Ok(Some(rfm)) = rfm_values(buffer, as_of, options.lookback_secs) {
                values.push((id, rfm));
            }
            Ok(())
        },
    );
    let mut scored: Vec<(Uuid, RfmValues)> = Vec::new();
    let mut persons_considered = 0;
    for (values, _, considered) in states.unwrap_or_default() {
        scored.extend(values);
        persons_considered += considered;
    }
    scored.sort_unstable_by_key(|(id, _)| *id);
    let mut report = RfmReport::new(options.levels);
    let values: Vec<RfmValues> = scored.iter().map(|(_, v)| *v).collect();
    let Ok((thresholds, scores)) = score_persons(&values, options.levels) else {
        return RfmRun {
            persons: Vec::new(),
            report,
            thresholds: None,
            persons_considered,
            positions: view.positions,
        };
    };
    let persons = scored
        .iter()
        .zip(scores)
        .map(|(&(person, values), scores)| {
            let segment = match &options.rules {
                Some(rules) => classify(rules, scores),
                None => classify_default(scores, options.levels),
            };
            report.add(&values, scores, segment);
            PersonRfm {
                person,
                values,
                scores,
                segment,
            }
        })
        .collect();
    RfmRun {
        persons,
        report,
        thresholds: Some(thresholds),
        persons_considered,
        positions: view.positions,
    }
}

/// One person's churn outputs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ChurnRow {
    /// The person.
    pub person: Uuid,
    /// 1 − P(alive); `None` without a purchase.
    pub score: Option<f64>,
    /// P(alive); `None` without a purchase.
    pub probability_alive: Option<f64>,
    /// Expected purchases in the settings' prediction period; `None` without a purchase.
    pub expected_purchases: Option<f64>,
    /// Flagged by the inactivity rule.
    pub churned: bool,
    /// Time since the last qualifying activity (ms); `None` without any.
    pub inactive_for_ms: Option<i64>,
    /// x: purchase days after the first.
    pub repeat_purchases: u64,
    /// The first purchase (ms).
    pub first_purchase_ms: Option<i64>,
    /// The last purchase (ms).
    pub last_purchase_ms: Option<i64>,
    /// The index of the inactivity rule that applied (in `ChurnTable::rules`).
    pub rule: u16,
}

/// The members of each inactivity rule's segment, in the settings' rule order, each list
/// sorted; the default rule's entry, and a segment that no longer exists, hold nobody.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuleMembers(pub Vec<Vec<Uuid>>);

impl RuleMembers {
    /// The index of the rule that applies to `person`: the first segment rule whose members
    /// hold them, else the last rule (the default rule closes every effective list).
    pub fn rule_of(&self, rules: &[EffectiveRule], person: &Uuid) -> u16 {
        let index = rules
            .iter()
            .enumerate()
            .position(|(i, rule)| {
                rule.segment.is_none()
                    || self
                        .0
                        .get(i)
                        .is_some_and(|members| members.binary_search(person).is_ok())
            })
            .unwrap_or(rules.len().saturating_sub(1));
        u16::try_from(index).unwrap_or(u16::MAX)
    }
}

/// What one inactivity rule gave: its segment, the suggestion from its persons' gaps and the
/// threshold that applied (the fixed one, else the suggestion).
#[derive(Debug, Clone, PartialEq)]
pub struct RuleOutcome {
    /// The rule's segment; `None` for the default rule.
    pub segment: Option<String>,
    /// The suggested threshold and its gap sample.
    pub suggestion: ThresholdSuggestion,
    /// The threshold that applied.
    pub threshold: InactivityThreshold,
}

/// The outcome of the probability-alive model's fit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FitOutcome {
    /// The model fitted.
    pub model: BetaGeoModel,
    /// The parameters used.
    pub params: BgNbdParams,
    /// The log-likelihood at them (over the fit's customers).
    pub log_likelihood: f64,
    /// Customers the fit used.
    pub person_count: u64,
    /// Whether the optimiser converged (true for fixed parameters).
    pub converged: bool,
    /// When it ran (ms).
    pub fit_ms: i64,
}

/// Every person's churn outputs over one view and one version of the settings.
#[derive(Debug, Clone)]
pub struct ChurnTable {
    /// Rows by person id.
    pub rows: Vec<ChurnRow>,
    /// Row indices by score, highest first, unscored last, ties by person id.
    pub by_score: Vec<u32>,
    /// Each inactivity rule's outcome, in the settings' order (the default rule last).
    pub rules: Vec<RuleOutcome>,
    /// The fit used; `None` when nobody has a purchase in the fit window.
    pub fit: Option<FitOutcome>,
    /// When it was computed (ms).
    pub compute_ms: i64,
    /// What the view reflected.
    pub positions: Positions,
}

impl ChurnTable {
    /// The outcome of the rule that applied to `row`.
    pub fn rule_of(&self, row: &ChurnRow) -> Option<&RuleOutcome> {
        self.rules.get(usize::from(row.rule))
    }

    /// The row of `person`.
    pub fn row(&self, person: &Uuid) -> Option<&ChurnRow> {
        self.rows
            .binary_search_by_key(person, |row| row.person)
            .ok()
            .and_then(|index| self.rows.get(index))
    }
}

mod scan;

use scan::{Gathered, gather};

/// One person's outputs from what the scan gathered.
fn row_of(
    p: &Gathered,
    (fit, prediction_days): (Option<FitOutcome>, u32),
    threshold: InactivityThreshold,
    now_ms: i64,
) -> ChurnRow {
    let (score, probability_alive, expected_purchases) = match (p.summary, fit) {
        (Some(summary), Some(fit)) => (
            Some(fit.model.churn_score(&fit.params, &summary)),
            Some(fit.model.probability_alive(&fit.params, &summary)),
            // The parameters are positive and finite and the horizon is 1–366 days, so the
            // model refuses nothing; an error would leave the figure unset, never wrong.
            fit.model
                .expected_purchases(&fit.params, &summary, f64::from(prediction_days))
                .ok()
                .filter(|e| e.is_finite()),
        ),
        _ => (None, None, None),
    };
    let status = inactivity_status(p.last_activity_ms.map(secs), secs(now_ms), threshold);
    let inactive_for_ms = match status {
        InactivityStatus::NeverActive => None,
        InactivityStatus::Active { .. } | InactivityStatus::Churned { .. } => p
            .last_activity_ms
            .map(|last| now_ms.saturating_sub(last).max(0)),
    };
    ChurnRow {
        person: p.person,
        score,
        probability_alive,
        expected_purchases,
        churned: status.is_churned(),
        inactive_for_ms,
        repeat_purchases: p.repeat_purchases,
        first_purchase_ms: p.first_purchase_ms,
        last_purchase_ms: p.last_purchase_ms,
        rule: p.rule,
    }
}

/// Computes every person's churn outputs at `now_ms`, each under the inactivity rule
/// `members` gives them; `reuse_fit` (a recent fit of the same settings) is used instead of
/// fitting again.
pub fn churn_table(
    view: &TenantView,
    purchase: &Condition,
    (settings, members): (&Effective, &RuleMembers),
    now_ms: i64,
    reuse_fit: Option<FitOutcome>,
    run: &RunContext,
) -> ChurnTable {
    let activity = (!settings.qualifying.is_empty())
        .then(|| activity_condition(view, &settings.qualifying, run));
    let mut scanned = gather(
        view,
        purchase,
        activity.as_ref(),
        (settings, members),
        now_ms,
        run.threads,
    );
    let rules: Vec<RuleOutcome> = settings
        .rules
        .iter()
        .zip(scanned.gaps.iter_mut())
        .map(|(rule, gaps)| rule_outcome(rule, gaps))
        .collect();
    let fit = fit_of(settings, reuse_fit, &scanned.fit, now_ms, run.threads);
    let rows: Vec<ChurnRow> = scanned
        .persons
        .iter()
        .map(|p| {
            let threshold = rules
                .get(usize::from(p.rule))
                .map_or_else(fallback_threshold, |rule| rule.threshold);
            row_of(p, (fit, settings.prediction_days), threshold, now_ms)
        })
        .collect();
    let by_score = score_order(&rows);
    ChurnTable {
        rows,
        by_score,
        rules,
        fit,
        compute_ms: now_ms,
        positions: view.positions,
    }
}

#[cfg(test)]
impl RuleOutcome {
    /// The default rule with the fallback threshold and no gaps: a table's rules in tests.
    pub(crate) fn fallback_default() -> Self {
        Self {
            segment: None,
            suggestion: ThresholdSuggestion {
                threshold: fallback_threshold(),
                gap_sample_size: 0,
                percentile_gap_secs: None,
            },
            threshold: fallback_threshold(),
        }
    }
}

/// A rule's suggestion from the gaps of its persons, and the threshold that applies.
fn rule_outcome(rule: &EffectiveRule, gaps: &mut PurchaseGapSample) -> RuleOutcome {
    let options = SuggestionOptions {
        percentile: rule.suggestion_percentile,
        ..SuggestionOptions::default()
    };
    let suggestion = gaps.suggest(&options).unwrap_or(ThresholdSuggestion {
        threshold: fallback_threshold(),
        gap_sample_size: gaps.len(),
        percentile_gap_secs: None,
    });
    RuleOutcome {
        segment: rule.segment.clone(),
        suggestion,
        threshold: rule.threshold.unwrap_or(suggestion.threshold),
    }
}

/// The documented fallback threshold, always inside the contract's range.
fn fallback_threshold() -> InactivityThreshold {
    match InactivityThreshold::from_days(DEFAULT_FALLBACK_DAYS) {
        Ok(threshold) => threshold,
        Err(_) => unreachable!("the fallback lies inside 1 to 1,095 days"),
    }
}

fn fit_of(
    settings: &Effective,
    reuse: Option<FitOutcome>,
    customers: &[CustomerSummary],
    now_ms: i64,
    threads: usize,
) -> Option<FitOutcome> {
    let model = settings.model;
    if let Some(params) = settings.fixed_parameters {
        return Some(FitOutcome {
            model,
            params,
            log_likelihood: model.log_likelihood(&params, customers),
            person_count: customers.len() as u64,
            converged: true,
            fit_ms: now_ms,
        });
    }
    if let Some(fit) = reuse.filter(|fit| fit.model == model) {
        return Some(fit);
    }
    let options = FitOptions {
        threads: threads.max(1),
        ..FitOptions::default()
    };
    let fit = model.fit(customers, &options).ok()?;
    Some(FitOutcome {
        model,
        params: fit.params,
        log_likelihood: fit.log_likelihood,
        person_count: fit.customer_count,
        converged: fit.converged,
        fit_ms: now_ms,
    })
}

/// The score key of a row: its score, or −1 (after every score) without one.
pub fn score_key(row: &ChurnRow) -> f64 {
    row.score.unwrap_or(-1.0)
}

fn score_order(rows: &[ChurnRow]) -> Vec<u32> {
    let mut order: Vec<u32> = (0..rows.len())
        .map(|i| u32::try_from(i).unwrap_or(u32::MAX))
        .collect();
    order.sort_unstable_by(|&x, &y| {
        let (x, y) = (&rows[x as usize], &rows[y as usize]);
        score_key(y)
            .total_cmp(&score_key(x))
            .then(x.person.cmp(&y.person))
    });
    order
}
