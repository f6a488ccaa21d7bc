//! Explicit operations: splits, erasure, consent, rules and reviews.

use chrono::{DateTime, Utc};
use sqlx::Connection as _;
use uuid::Uuid;

use super::{Actor, Identity, masked};
use crate::domain::IdentifierKey;
use crate::error::IdentityError;
use crate::graph;
use crate::rules::{self, Rules};
use crate::store::admin::{StoredConsent, StoredErasure, StoredPerson};
use crate::store::log::{NewChange, NewDecision, StoredReviewItem};
use crate::store::{self};

/// The result of a split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitDone {
    /// The new person holding the moved identifiers.
    pub new_person: Uuid,
    /// The audit record.
    pub decision: Uuid,
}

/// How a review item was decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Merge the persons.
    Approve,
    /// Keep them apart.
    Reject,
}

impl Identity {
    /// Moves `keys` of `person` to a new person and records the split.
    pub async fn split_person(
        &self,
        tenant: &str,
        person: Uuid,
        keys: &[IdentifierKey],
        actor: &Actor,
    ) -> Result<SplitDone, IdentityError> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        if !store::lock_persons(&mut tx, tenant, &[person])
            .await?
            .contains(&person)
        {
            return Err(IdentityError::NotFound(format!("person {person}")));
        }
        let held = store::identifiers_of(&mut tx, tenant, person).await?;
        if let Some(missing) = keys.iter().find(|k| !held.contains(k)) {
            return Err(IdentityError::FailedPrecondition(format!(
                "an identifier of type {} does not belong to the person",
                missing.id_type
            )));
        }
        if keys.len() >= held.len() {
            return Err(IdentityError::FailedPrecondition(
                "a split must leave the person at least one identifier".to_owned(),
            ));
        }
        let now = Utc::now();
        let new_person = Uuid::now_v7();
        store::split(&mut tx, tenant, person, new_person, keys, now).await?;
        let sequences = store::log::append_changes(
            &mut tx,
            tenant,
            &[NewChange {
                kind: "split",
                person_id: person,
                others: vec![new_person],
                moved: keys.to_vec(),
                ..NewChange::default()
            }],
            now,
            &actor.traceparent,
        )
        .await?;
        let decisions = store::log::insert_decisions(
            &mut tx,
            tenant,
            &[NewDecision {
                kind: "split",
                rule: "explicit_split",
                person_id: person,
                others: vec![new_person],
                identifiers: masked(keys),
                actor: actor.subject.clone(),
                source: actor.source.clone(),
                reason: actor.reason.clone(),
                change_sequence: sequences.first().copied().unwrap_or(0),
                ..NewDecision::default()
            }],
            now,
        )
        .await?;
        tx.commit().await?;
        self.relay_wake.notify_one();
        Ok(SplitDone {
            new_person,
            decision: decisions.first().copied().unwrap_or_default(),
        })
    }

    /// Erases `person` (or the person it was merged into); forgetting an
    /// erased person returns its erasure.
    pub async fn forget_person(
        &self,
        tenant: &str,
        person: Uuid,
        actor: &Actor,
    ) -> Result<StoredErasure, IdentityError> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        let Some(live) = store::current_person(&mut tx, tenant, person).await? else {
            drop(tx);
            return match store::admin::erasure_of_person(&mut conn, tenant, person).await? {
                Some(erasure) => self.erasure(tenant, erasure).await,
                None => Err(IdentityError::NotFound(format!("person {person}"))),
            };
        };
        if !store::lock_persons(&mut tx, tenant, &[live])
            .await?
            .contains(&live)
        {
            return Err(IdentityError::Contention { attempts: 1 });
        }
        let now = Utc::now();
        let erasure = Uuid::now_v7();
        let (ids, removed) = store::admin::erase(&mut tx, tenant, live, erasure, now).await?;
        store::admin::insert_erasure(
            &mut tx,
            tenant,
            erasure,
            &ids,
            &actor.reason,
            &actor.subject,
            removed,
            now,
        )
        .await?;
        store::log::append_changes(
            &mut tx,
            tenant,
            &[NewChange {
                kind: "erasure",
                person_id: live,
                others: ids.iter().copied().filter(|p| *p != live).collect(),
                erasure_id: Some(erasure),
                ..NewChange::default()
            }],
            now,
            &actor.traceparent,
        )
        .await?;
        tx.commit().await?;
        self.relay_wake.notify_one();
        tracing::info!(tenant, erasure = %erasure, removed, "person erased");
        self.erasure(tenant, erasure).await
    }

    /// Reads an erasure.
    pub async fn erasure(
        &self,
        tenant: &str,
        erasure: Uuid,
    ) -> Result<StoredErasure, IdentityError> {
        store::admin::erasure(&self.pool, tenant, erasure)
            .await?
            .ok_or_else(|| IdentityError::NotFound(format!("erasure {erasure}")))
    }

    /// Records a service's confirmation of an erasure.
    pub async fn confirm_erasure(
        &self,
        tenant: &str,
        erasure: Uuid,
        service: &str,
        removed: i64,
    ) -> Result<StoredErasure, IdentityError> {
        let mut conn = self.pool.acquire().await?;
        if !store::admin::confirm_erasure(&mut conn, tenant, erasure, service, removed, Utc::now())
            .await?
        {
            return Err(IdentityError::NotFound(format!("erasure {erasure}")));
        }
        self.erasure(tenant, erasure).await
    }

    /// Sets a person's marketing consent; a change is published on the
    /// change log. An older change than the stored one is ignored.
    pub async fn set_consent(
        &self,
        tenant: &str,
        person: Uuid,
        opt_out: bool,
        effective: DateTime<Utc>,
        actor: &Actor,
    ) -> Result<(Uuid, StoredConsent), IdentityError> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        let live = store::current_person(&mut tx, tenant, person)
            .await?
            .ok_or_else(|| IdentityError::NotFound(format!("person {person}")))?;
        if !store::lock_persons(&mut tx, tenant, &[live])
            .await?
            .contains(&live)
        {
            return Err(IdentityError::Contention { attempts: 1 });
        }
        let wanted = StoredConsent {
            marketing_opt_out: opt_out,
            time: Some(effective),
            source: actor.source.clone(),
            actor: actor.subject.clone(),
        };
        let (stored, changed) = store::admin::set_consent(&mut tx, tenant, live, &wanted).await?;
        if changed {
            store::log::append_changes(
                &mut tx,
                tenant,
                &[NewChange {
                    kind: "consent",
                    person_id: live,
                    marketing_opt_out: stored.marketing_opt_out,
                    ..NewChange::default()
                }],
                Utc::now(),
                &actor.traceparent,
            )
            .await?;
        }
        tx.commit().await?;
        Ok((live, stored))
    }

    /// Replaces the tenant's rules when `expected` (a revision) matches.
    pub async fn update_rules(
        &self,
        tenant: &str,
        rules: Rules,
        expected: Option<i64>,
        validate_only: bool,
    ) -> Result<Rules, IdentityError> {
        rules::validate(&rules)
            .map_err(|v| IdentityError::Rejected(crate::domain::Rejection::Invalid(v)))?;
        let mut conn = self.pool.acquire().await?;
        let current = store::admin::load_rules(&mut conn, tenant)
            .await?
            .map_or(0, |r| r.revision);
        if expected.is_some_and(|e| e != current) {
            return Err(IdentityError::Stale(
                "the rules changed since they were read".to_owned(),
            ));
        }
        if validate_only {
            return Ok(rules);
        }
        match store::admin::save_rules(&mut conn, tenant, &rules, current, Utc::now()).await? {
            Some(_) => self.rules(tenant).await,
            None => Err(IdentityError::Stale(
                "the rules changed concurrently".to_owned(),
            )),
        }
    }

    /// A live person's profile (a merged id reads the survivor).
    /// The identifiers of `types` each of `persons` holds, as stored (types the tenant
    /// pseudonymises arrive and stay pseudonymised), in the order of `persons`.
    pub async fn identifiers_of(
        &self,
        tenant: &str,
        persons: &[Uuid],
        types: &[String],
    ) -> Result<Vec<(Uuid, Vec<IdentifierKey>)>, IdentityError> {
        let types: Vec<String> = types.iter().map(|t| t.trim().to_lowercase()).collect();
        let mut conn = self.pool.acquire().await?;
        let held = store::admin::identifiers_of(&mut conn, tenant, persons, &types).await?;
        let mut by_person: std::collections::HashMap<Uuid, Vec<IdentifierKey>> =
            std::collections::HashMap::new();
        for (person, key) in held {
            by_person.entry(person).or_default().push(key);
        }
        Ok(persons
            .iter()
            .map(|person| (*person, by_person.get(person).cloned().unwrap_or_default()))
            .collect())
    }

    pub async fn profile(&self, tenant: &str, person: Uuid) -> Result<StoredPerson, IdentityError> {
        let mut conn = self.pool.acquire().await?;
        let live = store::current_person(&mut conn, tenant, person)
            .await?
            .ok_or_else(|| IdentityError::NotFound(format!("person {person}")))?;
        store::admin::person(&mut conn, tenant, live)
            .await?
            .ok_or_else(|| IdentityError::NotFound(format!("person {person}")))
    }

    /// Approves (merges) or rejects a review item. Returns the item and,
    /// for approvals, the surviving person.
    #[expect(
        clippy::too_many_lines,
        reason = "one review decision in one transaction: lock, re-read, apply the decision, audit, log the change"
    )]
    pub async fn resolve_review_item(
        &self,
        tenant: &str,
        item: Uuid,
        decision: Decision,
        expected_version: Option<i64>,
        actor: &Actor,
    ) -> Result<(StoredReviewItem, Option<Uuid>), IdentityError> {
        let mut conn = self.pool.acquire().await?;
        let mut tx = conn.begin().await?;
        let stored = store::log::lock_review_item(&mut tx, tenant, item)
            .await?
            .ok_or_else(|| IdentityError::NotFound(format!("review item {item}")))?;
        if expected_version.is_some_and(|v| v != stored.version) {
            return Err(IdentityError::Stale("the review item changed".to_owned()));
        }
        if stored.state != "open" {
            return Err(IdentityError::FailedPrecondition(format!(
                "the review item is already {}",
                stored.state
            )));
        }
        let now = Utc::now();
        let mut survivor = None;
        if decision == Decision::Approve {
            let (a, b) = stored.persons;
            let live_a = store::current_person(&mut tx, tenant, a).await?;
            let live_b = store::current_person(&mut tx, tenant, b).await?;
            let (Some(a), Some(b)) = (live_a, live_b) else {
                return Err(IdentityError::FailedPrecondition(
                    "a person of the item was erased".to_owned(),
                ));
            };
            let (keep, absorb) = graph::pair(a, b);
            let locked = store::lock_persons(&mut tx, tenant, &[keep, absorb]).await?;
            if !locked.contains(&keep) || !locked.contains(&absorb) {
                return Err(IdentityError::Contention { attempts: 1 });
            }
            if keep != absorb {
                store::merge(&mut tx, tenant, keep, &[absorb], now).await?;
                let sequences = store::log::append_changes(
                    &mut tx,
                    tenant,
                    &[NewChange {
                        kind: "merge",
                        person_id: keep,
                        others: vec![absorb],
                        ..NewChange::default()
                    }],
                    now,
                    &actor.traceparent,
                )
                .await?;
                store::log::insert_decisions(
                    &mut tx,
                    tenant,
                    &[NewDecision {
                        kind: "merge",
                        rule: "review_approval",
                        person_id: keep,
                        others: vec![absorb],
                        identifiers: stored.identifiers.clone(),
                        actor: actor.subject.clone(),
                        reason: actor.reason.clone(),
                        review_item_id: Some(item),
                        change_sequence: sequences.first().copied().unwrap_or(0),
                        ..NewDecision::default()
                    }],
                    now,
                )
                .await?;
            }
            survivor = Some(keep);
        }
        let state = match decision {
            Decision::Approve => "approved",
            Decision::Reject => "rejected",
        };
        let decided = store::log::decide_review_item(
            &mut tx,
            tenant,
            item,
            state,
            &actor.subject,
            &actor.reason,
            now,
        )
        .await?
        .ok_or_else(|| IdentityError::NotFound(format!("review item {item}")))?;
        tx.commit().await?;
        self.relay_wake.notify_one();
        Ok((decided, survivor))
    }
}

impl Identity {
    /// A page of audit records, newest first.
    pub async fn list_decisions(
        &self,
        tenant: &str,
        filter: DecisionFilter,
        before: Option<Uuid>,
        limit: i64,
    ) -> Result<Vec<store::log::StoredDecision>, IdentityError> {
        Ok(store::log::list_decisions(
            &self.pool,
            tenant,
            filter.person,
            filter.kind,
            (filter.from, filter.to),
            before,
            limit,
        )
        .await?)
    }

    /// A page of review items, most evidence first.
    pub async fn list_review_items(
        &self,
        tenant: &str,
        state: &str,
        reason: Option<&str>,
        after: Option<(i64, Uuid)>,
        limit: i64,
    ) -> Result<Vec<StoredReviewItem>, IdentityError> {
        Ok(store::log::list_review_items(&self.pool, tenant, state, reason, after, limit).await?)
    }
}

/// Which audit records to list.
#[derive(Debug, Clone, Copy, Default)]
pub struct DecisionFilter {
    /// Only those involving this person.
    pub person: Option<Uuid>,
    /// Only this kind (`merge`, `refusal`, `split`).
    pub kind: Option<&'static str>,
    /// Made at or after.
    pub from: Option<DateTime<Utc>>,
    /// Made before.
    pub to: Option<DateTime<Utc>>,
}

impl Identity {
    /// Runs a keyed call once per idempotency key (see
    /// [`touchline_db::RequestTable::run`]).
    pub async fn run_keyed<T, E, F>(
        &self,
        key: &touchline_db::RequestKey<'_>,
        call: F,
        encode: impl FnOnce(&T) -> Vec<u8>,
    ) -> Result<touchline_db::Run<Result<T, E>>, IdentityError>
    where
        F: std::future::Future<Output = Result<T, E>>,
    {
        Ok(store::admin::REQUESTS
            .run(&self.pool, key, call, encode)
            .await?)
    }
}
