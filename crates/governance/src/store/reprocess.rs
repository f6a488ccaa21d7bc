//! Reprocessing jobs, and what an earlier cleaning made of raw events.

use chrono::{DateTime, Utc};
use sqlx::PgPool;

/// A stored job.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRow {
    /// Id.
    pub job_id: String,
    /// State number.
    pub state: i16,
    /// Mode number.
    pub mode: i16,
    /// Received at or after.
    pub range_start: DateTime<Utc>,
    /// Received before.
    pub range_end: DateTime<Utc>,
    /// Source ids; empty for all.
    pub sources: Vec<String>,
    /// Dictionary version used.
    pub dictionary_version: i64,
    /// Raw events in the range.
    pub total_events: i64,
    /// Examined so far.
    pub examined_events: i64,
    /// Encoded `ReprocessDiff`.
    pub diff: Option<Vec<u8>>,
    /// Why it failed.
    pub error: String,
    /// Who started it.
    pub creator: String,
    /// Created.
    pub created_at: DateTime<Utc>,
    /// Finished.
    pub completed_at: Option<DateTime<Utc>>,
}

const COLUMNS: &str = "job_id, state, mode, range_start, range_end, sources, dictionary_version,
    total_events, examined_events, diff, error, creator, created_at, completed_at";

/// A job [`create`] recorded or found, and whether it recorded it.
#[derive(sqlx::FromRow)]
struct CreatedRow {
    #[sqlx(flatten)]
    job: JobRow,
    inserted: bool,
}

/// What [`create`] did.
#[derive(Debug, Clone)]
pub enum Created {
    /// Recorded a new pending job.
    Started(JobRow),
    /// An earlier call with the same request id started this job.
    Existing(JobRow),
    /// Not recorded: this APPLY job (by id) covers an overlapping range and
    /// is still alive.
    Overlapping(String),
}

/// Records a new pending job, unless an earlier call with `request_id`
/// started one, or the new job applies and another live APPLY job (progress
/// under `orphaned_after` old) overlaps its range. Starts of APPLY jobs of
/// a tenant are serialised, so two cannot both pass that check.
pub async fn create(
    pool: &PgPool,
    tenant: &str,
    new: &JobRow,
    request_id: Option<&str>,
    orphaned_after: std::time::Duration,
) -> Result<Created, sqlx::Error> {
    let mut tx = pool.begin().await?;
    if let Some(id) = request_id {
        let existing = sqlx::query_as::<_, JobRow>(&format!(
            "SELECT {COLUMNS} FROM governance.reprocess_jobs
              WHERE tenant_id = $1 AND request_id = $2 AND created_at > now() - interval '24 hours'"
        ))
        .bind(tenant)
        .bind(id)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(job) = existing {
            return Ok(Created::Existing(job));
        }
    }
    if new.mode == mode::APPLY {
        sqlx::query(
            "SELECT pg_advisory_xact_lock(hashtext('governance.reprocess_apply'), hashtext($1))",
        )
        .bind(tenant)
        .execute(&mut *tx)
        .await?;
        let overlapping: Option<String> = sqlx::query_scalar(
            "SELECT job_id FROM governance.reprocess_jobs
              WHERE tenant_id = $1 AND mode = $2 AND state IN (1, 2)
                AND heartbeat_at >= now() - make_interval(secs => $3)
                AND range_start < $5 AND $4 < range_end
                AND (cardinality(sources) = 0 OR cardinality($6::text[]) = 0 OR sources && $6)
              LIMIT 1",
        )
        .bind(tenant)
        .bind(mode::APPLY)
        .bind(orphaned_after.as_secs_f64())
        .bind(new.range_start)
        .bind(new.range_end)
        .bind(&new.sources)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(job_id) = overlapping {
            return Ok(Created::Overlapping(job_id));
        }
    }
    let created = sqlx::query_as::<_, CreatedRow>(&format!(
        "INSERT INTO governance.reprocess_jobs
           (tenant_id, job_id, mode, range_start, range_end, sources, dictionary_version, creator, request_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (tenant_id, request_id) WHERE request_id IS NOT NULL DO UPDATE
           SET request_id = EXCLUDED.request_id
         RETURNING {COLUMNS}, (xmax = 0) AS inserted"
    ))
    .bind(tenant)
    .bind(&new.job_id)
    .bind(new.mode)
    .bind(new.range_start)
    .bind(new.range_end)
    .bind(&new.sources)
    .bind(new.dictionary_version)
    .bind(&new.creator)
    .bind(request_id)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(if created.inserted {
        Created::Started(created.job)
    } else {
        Created::Existing(created.job)
    })
}

/// Job modes, as stored.
pub mod mode {
    /// Report only.
    pub const DRY_RUN: i16 = 1;
    /// Report and publish.
    pub const APPLY: i16 = 2;
}

/// Why an orphaned job failed, as its error says.
pub const ORPHANED: &str = "the server running this job stopped before it finished; start the job again \
     (运行此任务的服务在完成前停止，请重新发起)";

/// One job. A pending or running job whose heartbeat is older than
/// `orphaned_after` lost its server: it is marked failed first, so callers
/// polling for a final state get one.
pub async fn get(
    pool: &PgPool,
    tenant: &str,
    job_id: &str,
    orphaned_after: std::time::Duration,
) -> Result<Option<JobRow>, sqlx::Error> {
    sqlx::query(
        "UPDATE governance.reprocess_jobs
            SET state = 4, error = $3, completed_at = now()
          WHERE tenant_id = $1 AND job_id = $2 AND state IN (1, 2)
            AND heartbeat_at < now() - make_interval(secs => $4)",
    )
    .bind(tenant)
    .bind(job_id)
    .bind(ORPHANED)
    .bind(orphaned_after.as_secs_f64())
    .execute(pool)
    .await?;
    sqlx::query_as::<_, JobRow>(&format!(
        "SELECT {COLUMNS} FROM governance.reprocess_jobs WHERE tenant_id = $1 AND job_id = $2"
    ))
    .bind(tenant)
    .bind(job_id)
    .fetch_optional(pool)
    .await
}

/// Where a job stands, as recorded.
#[derive(Debug, Clone, Default)]
pub struct Progress {
    /// State number; 3 and 4 are final.
    pub state: i16,
    /// Raw events in the range.
    pub total: i64,
    /// Examined so far.
    pub examined: i64,
    /// Encoded `ReprocessDiff`.
    pub diff: Vec<u8>,
    /// Why it failed.
    pub error: String,
}

/// Records a job's progress; final states set the completion time.
pub async fn progress(
    pool: &PgPool,
    tenant: &str,
    job_id: &str,
    p: &Progress,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE governance.reprocess_jobs
            SET state = $3, total_events = $4, examined_events = $5, diff = $6, error = $7,
                completed_at = CASE WHEN $3 >= 3 THEN now() ELSE NULL END,
                heartbeat_at = now()
          WHERE tenant_id = $1 AND job_id = $2 AND state IN (1, 2)",
    )
    .bind(tenant)
    .bind(job_id)
    .bind(p.state)
    .bind(p.total)
    .bind(p.examined)
    .bind(&p.diff)
    .bind(&p.error)
    .execute(pool)
    .await?;
    Ok(())
}

/// The raw sequences received in `[start, end)` (only `sources` when not
/// empty): first, last and how many, from the outcome ledger.
pub async fn range(
    pool: &PgPool,
    tenant: &str,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
    sources: &[String],
) -> Result<Option<(i64, i64, i64)>, sqlx::Error> {
    let row = sqlx::query_as::<_, (Option<i64>, Option<i64>, i64)>(
        "SELECT min(raw_sequence), max(raw_sequence), count(*) FROM governance.raw_outcomes
          WHERE tenant_id = $1 AND received_at >= $2 AND received_at < $3
            AND (cardinality($4::text[]) = 0 OR source = ANY($4))",
    )
    .bind(tenant)
    .bind(start)
    .bind(end)
    .bind(sources)
    .fetch_one(pool)
    .await?;
    Ok(match row {
        (Some(f), Some(l), count) => Some((f, l, count)),
        _ => None,
    })
}

/// What the earlier cleaning made of one raw event.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Before {
    /// Outcome code (see `publish::outcome`).
    pub outcome: i16,
    /// First quarantine reason number, 0 when not quarantined.
    pub reason: i32,
    /// The latest clean record published for it, if any (encoded
    /// `CleanEvent`; a retraction's when it was withdrawn).
    #[sqlx(rename = "payload")]
    pub clean: Option<Vec<u8>>,
    /// The message id that record was published under (a restatement's is
    /// the first record's).
    #[sqlx(rename = "message_id")]
    pub clean_message_id: Option<String>,
}

/// One raw event's earlier outcome, as [`before`] reads it.
#[derive(sqlx::FromRow)]
struct BeforeRow {
    raw_sequence: i64,
    #[sqlx(flatten)]
    before: Before,
}

/// The earlier outcomes of `sequences`, by raw sequence.
pub async fn before(
    pool: &PgPool,
    tenant: &str,
    sequences: &[i64],
) -> Result<std::collections::HashMap<i64, Before>, sqlx::Error> {
    let rows = sqlx::query_as::<_, BeforeRow>(
        "SELECT o.raw_sequence, o.outcome, o.reason, c.payload, c.message_id
           FROM governance.raw_outcomes o
           LEFT JOIN LATERAL (
             SELECT payload, message_id FROM governance.clean_events c
              WHERE c.tenant_id = o.tenant_id AND c.raw_sequence = o.raw_sequence
              ORDER BY c.revision DESC LIMIT 1) c ON true
          WHERE o.tenant_id = $1 AND o.raw_sequence = ANY($2)",
    )
    .bind(tenant)
    .bind(sequences)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|r| (r.raw_sequence, r.before))
        .collect())
}
