//! One resolve transaction's writes, once the plan holds against the locked graph.

use std::collections::HashSet;

use chrono::Utc;
use sqlx::PgConnection;
use uuid::Uuid;

use super::planner::Planner;
use super::{Actor, Identity, Resolved, masked, read_view};
use crate::detach;
use crate::domain::{IdentifierKey, ResolveItem};
use crate::error::IdentityError;
use crate::graph;
use crate::store::log::{NewChange, NewDecision};
use crate::store::{self, LinkRow};

impl Identity {
    /// Locks, re-reads, plans and writes; `None` when the graph moved under
    /// us and the caller must roll back and try again.
    #[expect(
        clippy::too_many_lines,
        reason = "one transaction's writes in the order they must apply: links, merges, handovers, uses, seen-with, detachments, change log, audit, review items"
    )]
    pub(super) async fn write_plan(
        &self,
        tx: &mut PgConnection,
        tenant: &str,
        items: &[&ResolveItem],
        keys: &[IdentifierKey],
        planner: &Planner,
        actor: &Actor,
    ) -> Result<Option<Resolved>, IdentityError> {
        let (rules, options) = (planner.rules.as_ref(), planner.options);
        let before = store::lookup(tx, tenant, keys).await?;
        // Previous holders of handed-over values are locked too: an event
        // observed before a handover may link to them.
        let persons: Vec<Uuid> = before
            .values()
            .flat_map(|(k, _)| [Some(k.person_id), k.previous])
            .flatten()
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let active = store::lock_persons(tx, tenant, &persons).await?;
        let (view, _) = read_view(tx, tenant, keys, items).await?;
        if view.owners.values().any(|k| {
            !active.contains(&k.person_id) || k.previous.is_some_and(|p| !active.contains(&p))
        }) {
            return Ok(None);
        }
        let plan = planner.plan(view).await?;
        let now = Utc::now();
        let links: Vec<LinkRow<'_>> = plan
            .new_links
            .iter()
            .map(|link| {
                let item = items.get(link.item);
                LinkRow {
                    key: &link.key,
                    person_id: link.person_id,
                    observed_at: item.and_then(|item| item.observed_at),
                    evidence_message_id: item.map_or("", |item| item.evidence_message_id.as_str()),
                    seen_with: &link.seen_with,
                }
            })
            .collect();
        let written = store::create_and_link(tx, tenant, &plan.new_persons, &links, now).await?;
        if written != links.len() {
            return Ok(None);
        }
        let merges: Vec<(Uuid, &[Uuid])> = plan
            .merges
            .iter()
            .map(|m| (m.survivor, m.absorbed.as_slice()))
            .collect();
        store::merge_all(tx, tenant, &merges, now).await?;
        if store::timeline::hand_over(tx, tenant, &plan.handovers).await? != plan.handovers.len() {
            return Ok(None);
        }
        store::timeline::record_last_seen(tx, tenant, &plan.last_seen).await?;
        store::add_seen_with(tx, tenant, &plan.seen_with).await?;
        let mut changes: Vec<NewChange> = plan
            .merges
            .iter()
            .map(|m| NewChange {
                kind: "merge",
                person_id: m.survivor,
                others: m.absorbed.clone(),
                ..NewChange::default()
            })
            .collect();
        // Values this batch made shared take the events made only of them
        // off their owner; merges come first so the owner named is the
        // surviving person.
        if !plan.newly_shared.is_empty() {
            let contested = store::contested_of(tx, tenant, &detach::owners(&plan)).await?;
            changes.extend(
                detach::detachments(&plan, &contested, rules)
                    .into_iter()
                    .map(|d| NewChange {
                        kind: "detach",
                        person_id: d.person_id,
                        moved: d.keys,
                        ..NewChange::default()
                    }),
            );
        }
        // The merges' sequences come first: the audit below pairs them up in order.
        changes.extend(link_changes(&plan));
        let sequences =
            store::log::append_changes(tx, tenant, &changes, now, &actor.traceparent).await?;
        let rule = if options.explicit {
            "explicit_link"
        } else {
            "shared_event"
        };
        let evidence = |i: usize| {
            items
                .get(i)
                .map_or(String::new(), |item| item.evidence_message_id.clone())
        };
        let mut decisions: Vec<NewDecision> = plan
            .merges
            .iter()
            .zip(&sequences)
            .map(|(m, seq)| NewDecision {
                kind: "merge",
                rule,
                person_id: m.survivor,
                others: m.absorbed.clone(),
                identifiers: masked(&m.keys),
                evidence_message_id: evidence(m.item),
                source: actor.source.clone(),
                actor: actor.subject.clone(),
                reason: actor.reason.clone(),
                change_sequence: *seq,
                ..NewDecision::default()
            })
            .collect();
        let mut review_items = Vec::with_capacity(plan.refusals.len());
        for refusal in &plan.refusals {
            let review = match (refusal.review, refusal.person_id, refusal.others.first()) {
                (true, Some(person), Some(other)) => Some(
                    store::log::upsert_review_item(
                        tx,
                        tenant,
                        graph::pair(person, *other),
                        refusal.reason.as_str(),
                        &masked(&refusal.keys),
                        &evidence(refusal.item),
                        now,
                    )
                    .await?,
                ),
                _ => None,
            };
            review_items.push(review);
            decisions.push(NewDecision {
                kind: "refusal",
                rule: "resolution_rule",
                refusal_reason: refusal.reason.as_str(),
                person_id: refusal.person_id.unwrap_or(Uuid::nil()),
                others: refusal.others.clone(),
                identifiers: masked(&refusal.keys),
                evidence_message_id: evidence(refusal.item),
                source: actor.source.clone(),
                actor: actor.subject.clone(),
                reason: actor.reason.clone(),
                review_item_id: review,
                ..NewDecision::default()
            });
        }
        if options.reassignment {
            decisions.extend(carrier_handovers(&plan, actor));
        }
        let decisions = store::log::insert_decisions(tx, tenant, &decisions, now).await?;
        Ok(Some(Resolved {
            outcomes: plan.results.clone(),
            plan,
            decisions,
            review_items,
            versions: None,
        }))
    }
}

/// The audit records of numbers a carrier's records handed over: the new holder, the previous
/// one, the number masked, and who recorded it.
fn carrier_handovers(plan: &graph::GraphPlan, actor: &Actor) -> Vec<NewDecision> {
    plan.handovers
        .iter()
        .map(|h| NewDecision {
            kind: "handover",
            rule: "carrier_record",
            person_id: h.to,
            others: vec![h.from],
            identifiers: masked(std::slice::from_ref(&h.key)),
            source: actor.source.clone(),
            actor: actor.subject.clone(),
            reason: actor.reason.clone(),
            ..NewDecision::default()
        })
        .collect()
}

/// One LINK change per person who holds identifiers the plan gave them: new links and values
/// handed over from a previous holder, named by the person each ends with after the plan's
/// merges (a link to a person the same batch absorbs belongs to the survivor).
fn link_changes(plan: &graph::GraphPlan) -> Vec<NewChange> {
    let survivors = plan.survivors();
    let holder = |person: Uuid| survivors.get(&person).copied().unwrap_or(person);
    // In the order persons first appear, so the log reads like the batch.
    let mut by_person: Vec<(Uuid, Vec<IdentifierKey>)> = Vec::new();
    let mut index: std::collections::HashMap<Uuid, usize> = std::collections::HashMap::new();
    let linked = plan
        .new_links
        .iter()
        .map(|link| (holder(link.person_id), &link.key))
        .chain(plan.handovers.iter().map(|h| (holder(h.to), &h.key)));
    for (person, key) in linked {
        let at = *index.entry(person).or_insert_with(|| {
            by_person.push((person, Vec::new()));
            by_person.len() - 1
        });
        if let Some((_, keys)) = by_person.get_mut(at)
            && !keys.contains(key)
        {
            keys.push(key.clone());
        }
    }
    by_person
        .into_iter()
        .map(|(person_id, moved)| NewChange {
            kind: "link",
            person_id,
            moved,
            ..NewChange::default()
        })
        .collect()
}
