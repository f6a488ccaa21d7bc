//! The source registry's operations: each owns its transaction, checks
//! input with [`crate::domain::source`] and stores through
//! [`crate::store::sources`].

use chrono::{DateTime, Utc};
use prost::Message as _;
use sqlx::{PgConnection, PgPool};
use touchline_db::{Claim, RequestKey};
use touchline_proto::collection::v1::{Source, SourceKind, SourceState};

use crate::domain::{names, source as rules};
use crate::error::CollectionError;
use crate::store::sources::{self as store, RevisionRow};

/// Default and largest page of ListSources.
const PAGE: (i32, i32) = (50, 500);

fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: at.timestamp(),
        nanos: i32::try_from(at.timestamp_subsec_nanos()).unwrap_or(0),
    }
}

fn decode(bytes: &[u8]) -> Result<Source, CollectionError> {
    Source::decode(bytes).map_err(|err| {
        CollectionError::Store(std::sync::Arc::new(sqlx::Error::Decode(Box::new(err))))
    })
}

/// Claims a keyed write's request id in the transaction that makes the
/// write, and gives back the first call's reply when there was one. A retry
/// racing the first call waits on the key until the first commits (then it
/// reads the reply) or rolls back (then the key is its own), so a write is
/// never made twice. Unkeyed calls claim nothing.
async fn claim(
    tx: &mut PgConnection,
    key: &RequestKey<'_>,
) -> Result<Option<Vec<u8>>, CollectionError> {
    if key.request_id.is_empty() {
        return Ok(None);
    }
    match store::REQUESTS.claim(tx, key).await? {
        Claim::Owned => Ok(None),
        Claim::Done(reply) => Ok(Some(reply)),
        // Only a claim left without a reply by some other path; in a
        // transaction every claim commits with its reply.
        Claim::InFlight => Err(CollectionError::InFlight),
    }
}

/// Registers a source; with `request_id`, a retry returns the first answer.
pub async fn create(
    pool: &PgPool,
    tenant: &str,
    source_id: &str,
    source: Source,
    request_id: &str,
    validate_only: bool,
) -> Result<Source, CollectionError> {
    let mut violations = Vec::new();
    if !rules::is_valid_id(source_id) {
        violations.push(touchline_error::FieldViolation::new(
            "source_id",
            "INVALID_ID",
            "1 to 63 lower-case letters, digits and hyphens, starting with a letter",
        ));
    }
    let normalised = rules::normalise(source);
    let mut source = match normalised {
        Ok(source) if violations.is_empty() => source,
        Ok(_) => return Err(CollectionError::violations(violations)),
        Err(more) => {
            violations.extend(more);
            return Err(CollectionError::violations(violations));
        }
    };
    let now = Utc::now();
    source.name = names::source(tenant, source_id);
    source.revision = 1;
    source.create_time = Some(timestamp(now));
    source.update_time = Some(timestamp(now));
    source.etag = rules::etag(source_id, 1);
    if validate_only {
        return Ok(source);
    }
    let mut tx = pool.begin().await?;
    let key = RequestKey {
        tenant,
        request_id,
        method: "create_source",
    };
    if let Some(first) = claim(&mut tx, &key).await? {
        return decode(&first);
    }
    let payload = source.encode_to_vec();
    let created = store::insert(
        &mut tx,
        tenant,
        &RevisionRow {
            source_id,
            revision: 1,
            kind: source.kind,
            state: source.state,
            payload: &payload,
            at: now,
        },
    )
    .await?;
    if !created {
        return Err(CollectionError::AlreadyExists(format!(
            "source {source_id:?}"
        )));
    }
    if !request_id.is_empty() {
        store::REQUESTS.complete(&mut tx, &key, &payload).await?;
    }
    tx.commit().await?;
    tracing::info!(tenant, source = source_id, "source created");
    Ok(source)
}

/// The source at `revision` (0: current).
pub async fn get(
    pool: &PgPool,
    tenant: &str,
    source_id: &str,
    revision: i64,
) -> Result<Source, CollectionError> {
    if revision < 0 {
        return Err(CollectionError::invalid(
            "revision",
            "NEGATIVE",
            "must not be negative",
        ));
    }
    let mut conn = pool.acquire().await?;
    let found = store::get(
        &mut conn,
        tenant,
        source_id,
        (revision > 0).then_some(revision),
    )
    .await?
    .ok_or_else(|| CollectionError::NotFound(format!("source {source_id:?}")))?;
    decode(&found)
}

/// A page of the tenant's sources and the token of the next one.
pub async fn list(
    pool: &PgPool,
    tenant: &str,
    page_size: i32,
    page_token: &str,
    kind: i32,
    show_disabled: bool,
) -> Result<(Vec<Source>, String), CollectionError> {
    let after = if page_token.is_empty() {
        String::new()
    } else {
        hex::decode(page_token)
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .ok_or_else(|| {
                CollectionError::invalid("page_token", "BAD_PAGE_TOKEN", "not a token we issued")
            })?
    };
    let size = match page_size {
        0 => PAGE.0,
        n if n < 0 => {
            return Err(CollectionError::invalid(
                "page_size",
                "NEGATIVE",
                "must not be negative",
            ));
        }
        n => n.min(PAGE.1),
    };
    let kind = (kind != SourceKind::Unspecified as i32).then_some(kind);
    let rows = store::list(
        pool,
        tenant,
        &after,
        i64::from(size) + 1,
        kind,
        show_disabled,
        SourceState::Disabled as i32,
    )
    .await?;
    let more = rows.len() > usize::try_from(size).unwrap_or(0);
    let mut sources = Vec::with_capacity(rows.len());
    let mut last = String::new();
    for (id, payload) in rows.into_iter().take(usize::try_from(size).unwrap_or(0)) {
        sources.push(decode(&payload)?);
        last = id;
    }
    let next = if more {
        hex::encode(last)
    } else {
        String::new()
    };
    Ok((sources, next))
}

/// What an update asks for.
#[derive(Debug)]
pub struct Update<'a> {
    /// The source id.
    pub source_id: &'a str,
    /// The new values and the expected etag.
    pub patch: Source,
    /// Which fields to change.
    pub paths: Vec<String>,
    /// Only check, do not change.
    pub validate_only: bool,
    /// Idempotency key.
    pub request_id: &'a str,
}

/// Changes a source, creating its next revision.
pub async fn update(
    pool: &PgPool,
    tenant: &str,
    update: Update<'_>,
) -> Result<Source, CollectionError> {
    let source_id = update.source_id;
    let method = format!("update_source/{source_id}");
    let mut tx = pool.begin().await?;
    let key = RequestKey {
        tenant,
        request_id: update.request_id,
        method: &method,
    };
    if let Some(first) = claim(&mut tx, &key).await? {
        return decode(&first);
    }
    let current = store::lock_current(&mut tx, tenant, source_id)
        .await?
        .ok_or_else(|| CollectionError::NotFound(format!("source {source_id:?}")))?;
    let current = decode(&current)?;
    if !update.patch.etag.is_empty() && update.patch.etag != current.etag {
        return Err(CollectionError::StaleEtag);
    }
    let next = rules::apply_mask(&current, &update.patch, &update.paths)
        .map_err(CollectionError::violations)?;
    let mut next = rules::normalise(next).map_err(CollectionError::violations)?;
    let now = Utc::now();
    next.revision = current.revision + 1;
    next.update_time = Some(timestamp(now));
    next.etag = rules::etag(source_id, next.revision);
    if update.validate_only {
        return Ok(next);
    }
    let payload = next.encode_to_vec();
    store::update(
        &mut tx,
        tenant,
        &RevisionRow {
            source_id,
            revision: next.revision,
            kind: next.kind,
            state: next.state,
            payload: &payload,
            at: now,
        },
    )
    .await?;
    if !update.request_id.is_empty() {
        store::REQUESTS.complete(&mut tx, &key, &payload).await?;
    }
    tx.commit().await?;
    tracing::info!(
        tenant,
        source = source_id,
        revision = next.revision,
        "source updated"
    );
    Ok(next)
}
