//! Keeping one tenant's segments current: evaluate every live segment over the current view
//! (each after the segments it names), compare with the stored members, and publish the
//! entries and exits with their reasons in one transaction with the new membership, so the
//! change log and the members never disagree.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use super::super::Modeling;
use super::super::outputs::Needs;
use crate::error::ModelingError;
use crate::journeys::segments::rule::evaluation_order;
use crate::journeys::segments::{Evaluation, Rule, evaluate_in_order};
use crate::store::segments::{self as store, ChangeKind, Evaluated, NewChange, SegmentRow};

/// The contract's `SegmentChangeReason` numbers.
mod reason {
    pub const RULE_EVALUATED: i16 = 1;
    pub const TIME_WINDOW: i16 = 2;
    pub const RULE_CHANGED: i16 = 3;
    pub const CONSENT_CHANGED: i16 = 4;
    pub const PERSON_MERGED: i16 = 5;
    pub const PERSON_ERASED: i16 = 7;
    pub const SEGMENT_DELETED: i16 = 8;
    pub const SEGMENT_CREATED: i16 = 9;
    pub const IDENTIFIERS_CHANGED: i16 = 10;
}

/// Evaluations at least this often even when nothing seems to have moved: consent and
/// model settings change outside the event store's revisions.
const EVALUATE_AT_LEAST_EVERY: Duration = Duration::from_secs(10);

/// What the worker remembers of a tenant between rounds.
#[derive(Debug, Clone, Default)]
pub struct TenantMemory {
    /// The store revision of the last evaluation.
    revision: Option<i64>,
    /// The identifier revision it saw.
    identifiers: Option<i64>,
    /// When it ran.
    at: Option<Instant>,
}

/// What one round did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Round {
    /// Whether the segments were evaluated.
    pub evaluated: bool,
    /// Changes published.
    pub published: usize,
}

/// The changes that take `current` (sorted) to `wanted` (sorted), each with its reason.
fn differences(
    current: &[Uuid],
    wanted: &[Uuid],
    reason_of: impl Fn(Uuid, bool) -> i16,
) -> Vec<NewChange> {
    let mut out = Vec::new();
    let (mut i, mut j) = (0, 0);
    while i < current.len() || j < wanted.len() {
        match (current.get(i), wanted.get(j)) {
            (Some(c), Some(w)) if c == w => {
                i += 1;
                j += 1;
            }
            (Some(c), Some(w)) if c < w => {
                out.push(NewChange {
                    person: *c,
                    kind: ChangeKind::Exited,
                    reason: reason_of(*c, false),
                });
                i += 1;
            }
            (Some(c), None) => {
                out.push(NewChange {
                    person: *c,
                    kind: ChangeKind::Exited,
                    reason: reason_of(*c, false),
                });
                i += 1;
            }
            (_, Some(w)) => {
                out.push(NewChange {
                    person: *w,
                    kind: ChangeKind::Entered,
                    reason: reason_of(*w, true),
                });
                j += 1;
            }
            (None, None) => break,
        }
    }
    out
}

/// An IDENTIFIERS_UPDATED change for each member who stays a member (neither enters nor
/// exits in `changes`) and whose identifiers of one of `types` changed.
fn identifier_updates(
    current: &[Uuid],
    changes: &[NewChange],
    types: &[String],
    judged: &Judged<'_>,
) -> Vec<NewChange> {
    if types.is_empty() || judged.identifiers.is_empty() {
        return Vec::new();
    }
    let moving: HashSet<Uuid> = changes.iter().map(|c| c.person).collect();
    current
        .iter()
        .filter(|p| !moving.contains(p) && !judged.opted_out.contains(p))
        .filter(|p| {
            judged
                .identifiers
                .get(p)
                .is_some_and(|changed| types.iter().any(|t| changed.contains(t)))
        })
        .map(|p| NewChange {
            person: *p,
            kind: ChangeKind::IdentifiersUpdated,
            reason: reason::IDENTIFIERS_CHANGED,
        })
        .collect()
}

fn due_at(next_due_ms: Option<i64>, reevaluation_secs: i64, now: DateTime<Utc>) -> DateTime<Utc> {
    let latest = now + chrono::Duration::seconds(reevaluation_secs);
    next_due_ms
        .and_then(DateTime::<Utc>::from_timestamp_millis)
        .map_or(latest, |due| due.min(latest))
}

/// What the reasons of one round's changes depend on.
struct Judged<'a> {
    opted_out: &'a HashSet<Uuid>,
    /// The identifier types each person's changed since the last round.
    identifiers: &'a HashMap<Uuid, HashSet<String>>,
    /// Nothing new reached the store since the last round: time alone moved the windows.
    by_time: bool,
    now: DateTime<Utc>,
}

/// Publishes what takes one segment from its stored members to `evaluation`'s; returns the
/// changes published and the log's head.
async fn publish_segment(
    tx: &mut sqlx::PgConnection,
    tenant: &str,
    row: &SegmentRow,
    evaluation: Evaluation,
    judged: &Judged<'_>,
) -> Result<(usize, i64), ModelingError> {
    let id = row.id.as_str();
    let mut wanted = evaluation.members;
    wanted.retain(|p| !judged.opted_out.contains(p));
    let current = store::current_members(tx, tenant, id).await?;
    let exits: Vec<Uuid> = {
        let keep: HashSet<&Uuid> = wanted.iter().collect();
        current
            .iter()
            .filter(|p| !keep.contains(p))
            .copied()
            .collect()
    };
    let (merged, erased) = store::exit_causes(tx, tenant, &exits).await?;
    let rebuild = match row.built_rule_revision {
        None => Some(reason::SEGMENT_CREATED),
        Some(built) if built != row.rule_revision => Some(reason::RULE_CHANGED),
        Some(_) => None,
    };
    let changes = differences(&current, &wanted, |person, entered| {
        if !entered && judged.opted_out.contains(&person) {
            reason::CONSENT_CHANGED
        } else if !entered && erased.contains(&person) {
            reason::PERSON_ERASED
        } else if !entered && merged.contains(&person) {
            reason::PERSON_MERGED
        } else if let Some(rebuild) = rebuild {
            rebuild
        } else if judged.by_time {
            reason::TIME_WINDOW
        } else {
            reason::RULE_EVALUATED
        }
    });
    let mut changes = changes;
    changes.extend(identifier_updates(
        &current,
        &changes,
        &row.definition.identifier_update_types,
        judged,
    ));
    let causes = store::causes(tx, tenant, &changes).await?;
    let last = store::publish(tx, tenant, id, &changes, &causes, judged.now).await?;
    crate::store::activation::append_segment_triggers(
        tx, tenant, id, &changes, &causes, judged.now,
    )
    .await?;
    store::evaluated(
        tx,
        tenant,
        id,
        Evaluated {
            rule_revision: row.rule_revision,
            member_count: i64::try_from(wanted.len()).unwrap_or(i64::MAX),
            last_change_sequence: (!changes.is_empty()).then_some(last),
            next_due_at: Some(due_at(
                evaluation.next_due_ms,
                row.definition.reevaluation_secs,
                judged.now,
            )),
        },
    )
    .await?;
    Ok((changes.len(), last))
}

/// Publishes the exits of every member of the deleted segments and drops them; the changes
/// published and the log's head, when there was a deleted segment.
async fn publish_deletions(
    tx: &mut sqlx::PgConnection,
    tenant: &str,
    segments: &[SegmentRow],
    now: DateTime<Utc>,
) -> Result<Option<(usize, i64)>, ModelingError> {
    let mut done = None;
    for row in segments.iter().filter(|s| s.deleted) {
        let current = store::current_members(tx, tenant, &row.id).await?;
        let changes = differences(&current, &[], |_, _| reason::SEGMENT_DELETED);
        let head = store::publish(tx, tenant, &row.id, &changes, &[], now).await?;
        crate::store::activation::append_segment_triggers(tx, tenant, &row.id, &changes, &[], now)
            .await?;
        store::purge(tx, tenant, &row.id).await?;
        let (count, _) = done.unwrap_or((0, head));
        done = Some((count + changes.len(), head));
    }
    Ok(done)
}

impl Modeling {
    /// Who every live segment selects now, each after the segments it names, and the store
    /// revision the answer reflects.
    async fn evaluate_segments(
        &self,
        tenant: &str,
        live: &[&SegmentRow],
        now_ms: i64,
    ) -> Result<(Vec<(String, Evaluation)>, i64), ModelingError> {
        let graph: Vec<(String, std::collections::BTreeSet<String>)> = live
            .iter()
            .map(|s| (s.id.clone(), s.definition.rule.referenced_segments()))
            .collect();
        let order = evaluation_order(&graph).map_err(|cycle| {
            tracing::error!(tenant, cycle = ?cycle, "segments refer to each other in a cycle");
            ModelingError::Internal("segment order")
        })?;
        let ordered: Vec<(String, Rule)> = order
            .iter()
            .filter_map(|id| live.iter().find(|s| &s.id == id))
            .map(|s| (s.id.clone(), s.definition.rule.clone()))
            .collect();
        let rules: Vec<&Rule> = ordered.iter().map(|(_, rule)| rule).collect();
        let mut inputs = self.output_inputs(tenant, Needs::of(&rules)).await?;
        self.read_holders(tenant, &rules, &mut inputs).await?;
        let names: Vec<String> = ordered.iter().flat_map(|(_, r)| r.event_names()).collect();
        self.on_view(tenant, names, move |view, run| {
            let outputs = inputs.outputs(view, run, now_ms)?;
            let context = inputs.context(&outputs, now_ms);
            let found = evaluate_in_order(
                view,
                &ordered,
                &|_| None,
                &run.defined,
                &context,
                run.threads,
            );
            Ok((found, view.positions.revision))
        })
        .await
    }

    /// Brings the tenant's segments up to date when something may have moved them: a new
    /// or changed rule, a deletion, a new store revision, a window coming due, or the
    /// periodic look that catches consent and settings changes.
    pub(super) async fn refresh_segments(
        &self,
        tenant: &str,
        memory: &mut TenantMemory,
    ) -> Result<Round, ModelingError> {
        let mut conn = self.pool.acquire().await?;
        let segments = store::all(&mut conn, tenant).await?;
        drop(conn);
        if segments.is_empty() {
            return Ok(Round::default());
        }
        let revision = self.journeys.current(tenant).await?.positions.revision;
        let identifiers = crate::store::identifiers::revision(&self.pool, tenant).await?;
        let now = Utc::now();
        let due = segments.iter().any(|s| {
            s.deleted
                || s.built_rule_revision != Some(s.rule_revision)
                || s.next_due_at.is_some_and(|at| at <= now)
        });
        let moved = memory.revision != Some(revision) || memory.identifiers != Some(identifiers);
        let stale = memory
            .at
            .is_none_or(|at| at.elapsed() >= EVALUATE_AT_LEAST_EVERY);
        if !(due || moved || stale) {
            return Ok(Round::default());
        }
        let live: Vec<&SegmentRow> = segments.iter().filter(|s| !s.deleted).collect();
        let (evaluations, evaluated_revision) = self
            .evaluate_segments(tenant, &live, now.timestamp_millis())
            .await?;
        let opted_out = crate::store::opted_out_persons(&self.pool, tenant).await?;
        let by_time =
            memory.revision == Some(evaluated_revision) && memory.identifiers == Some(identifiers);

        let mut tx = self.pool.begin().await?;
        if !store::try_lock_tenant(&mut tx, tenant).await? {
            // Another replica is publishing this tenant's changes right now.
            return Ok(Round::default());
        }
        let mut changed: HashMap<Uuid, HashSet<String>> = HashMap::new();
        for (person, id_type) in crate::store::identifiers::take_updates(&mut tx, tenant).await? {
            changed.entry(person).or_default().insert(id_type);
        }
        let mut published = 0;
        let mut head = None;
        for (id, evaluation) in evaluations {
            let Some(row) = live.iter().find(|s| s.id == id) else {
                continue;
            };
            let (count, last) = publish_segment(
                &mut tx,
                tenant,
                row,
                evaluation,
                &Judged {
                    opted_out: &opted_out,
                    identifiers: &changed,
                    by_time,
                    now,
                },
            )
            .await?;
            published += count;
            head = Some(last);
        }
        if let Some((count, last)) = publish_deletions(&mut tx, tenant, &segments, now).await? {
            published += count;
            head = Some(last);
        }
        tx.commit().await?;
        memory.revision = Some(evaluated_revision);
        memory.identifiers = Some(identifiers);
        memory.at = Some(Instant::now());
        if let Some(head) = head.filter(|_| published > 0) {
            self.segment_signals.published(tenant, head);
        }
        Ok(Round {
            evaluated: true,
            published,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differences_enter_the_new_exit_the_gone_and_leave_the_rest() {
        let p = |n| Uuid::from_u128(n);
        let changes = differences(&[p(1), p(3), p(5)], &[p(2), p(3), p(6)], |_, entered| {
            i16::from(entered)
        });
        let seen: Vec<(Uuid, bool)> = changes
            .iter()
            .map(|c| (c.person, c.kind == ChangeKind::Entered))
            .collect();
        assert_eq!(
            seen,
            vec![(p(1), false), (p(2), true), (p(5), false), (p(6), true)]
        );
        assert!(differences(&[p(1)], &[p(1)], |_, _| 0).is_empty());
    }
}
