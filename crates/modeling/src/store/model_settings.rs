//! The tenant's model settings: one row a tenant, its JSON form, its revision (the etag) and
//! the request ids of the updates already applied.
//!
//! The JSON form is this module's own, so the stored shape never follows a rename in the
//! service's types by accident; only what callers set is kept (defaults are applied on read).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, PgPool};

use crate::journeys::churn_settings::{
    BgNbdSettings, ChurnSettings, LifecycleSettings, ModelSettings, RfmSettings, RuleSettings,
    SegmentRuleSettings,
};
use crate::journeys::query::{FieldFilter, Matcher, Operator};

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct StoredFilter {
    field: String,
    operator: String,
    #[serde(default)]
    values: Vec<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct StoredMatcher {
    #[serde(default)]
    event_name: String,
    #[serde(default)]
    filters: Vec<StoredFilter>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct StoredRule {
    #[serde(default)]
    segment: String,
    #[serde(default)]
    threshold: Option<(i64, i32)>,
    #[serde(default)]
    suggestion_percentile: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
struct Stored {
    time_zone: String,
    week_start: i32,
    purchase_event: Option<StoredMatcher>,
    value_field: String,
    lifecycle_interval: i32,
    lifecycle_qualifying: Vec<StoredMatcher>,
    lifecycle_churn_intervals: i32,
    inactivity_rules: Vec<StoredRule>,
    churn_qualifying: Vec<StoredMatcher>,
    churn_model: i32,
    churn_model_events: i32,
    fit_window: Option<(i64, i32)>,
    refit_interval: Option<(i64, i32)>,
    fixed_parameters: Option<[f64; 4]>,
    prediction_period: Option<(i64, i32)>,
    rfm_lookback: Option<(i64, i32)>,
    rfm_score_levels: i32,
    rfm_segment_rules: Vec<(i32, [i32; 6])>,
    analysable_properties: Vec<String>,
}

fn operator_text(operator: Operator) -> String {
    match operator {
        Operator::Equals => "equals".to_owned(),
        Operator::NotEquals => "not_equals".to_owned(),
        Operator::Contains => "contains".to_owned(),
        Operator::NotContains => "not_contains".to_owned(),
        Operator::IsSet => "is_set".to_owned(),
        Operator::IsNotSet => "is_not_set".to_owned(),
        Operator::Between => "between".to_owned(),
        Operator::LessOrEqual => "less_or_equal".to_owned(),
        Operator::LessThan => "less_than".to_owned(),
        Operator::GreaterOrEqual => "greater_or_equal".to_owned(),
        Operator::GreaterThan => "greater_than".to_owned(),
        Operator::Unsupported(number) => format!("unsupported:{number}"),
    }
}

fn operator_of(text: &str) -> Operator {
    match text {
        "equals" => Operator::Equals,
        "not_equals" => Operator::NotEquals,
        "contains" => Operator::Contains,
        "not_contains" => Operator::NotContains,
        "is_set" => Operator::IsSet,
        "is_not_set" => Operator::IsNotSet,
        "between" => Operator::Between,
        "less_or_equal" => Operator::LessOrEqual,
        "less_than" => Operator::LessThan,
        "greater_or_equal" => Operator::GreaterOrEqual,
        "greater_than" => Operator::GreaterThan,
        other => Operator::Unsupported(
            other
                .strip_prefix("unsupported:")
                .and_then(|n| n.parse().ok())
                .unwrap_or(0),
        ),
    }
}

pub(super) fn to_stored(matcher: &Matcher) -> StoredMatcher {
    StoredMatcher {
        event_name: matcher.event_name.clone(),
        filters: matcher
            .filters
            .iter()
            .map(|f| StoredFilter {
                field: f.field.clone(),
                operator: operator_text(f.operator),
                values: f.values.clone(),
            })
            .collect(),
    }
}

pub(super) fn from_stored(matcher: StoredMatcher) -> Matcher {
    Matcher {
        event_name: matcher.event_name,
        filters: matcher
            .filters
            .into_iter()
            .map(|f| FieldFilter {
                operator: operator_of(&f.operator),
                field: f.field,
                values: f.values,
            })
            .collect(),
    }
}

impl From<&ModelSettings> for Stored {
    fn from(s: &ModelSettings) -> Self {
        Stored {
            time_zone: s.time_zone.clone(),
            week_start: s.week_start,
            purchase_event: s.purchase_event.as_ref().map(to_stored),
            value_field: s.value_field.clone(),
            lifecycle_interval: s.lifecycle.interval,
            lifecycle_qualifying: s.lifecycle.qualifying.iter().map(to_stored).collect(),
            lifecycle_churn_intervals: s.lifecycle.churn_intervals,
            inactivity_rules: s
                .churn
                .inactivity_rules
                .iter()
                .map(|r| StoredRule {
                    segment: r.segment.clone(),
                    threshold: r.threshold,
                    suggestion_percentile: r.suggestion_percentile,
                })
                .collect(),
            churn_qualifying: s.churn.qualifying.iter().map(to_stored).collect(),
            churn_model: s.churn.model,
            churn_model_events: s.churn.model_events,
            fit_window: s.churn.bg_nbd.fit_window,
            refit_interval: s.churn.bg_nbd.refit_interval,
            fixed_parameters: s.churn.bg_nbd.fixed_parameters,
            prediction_period: s.churn.bg_nbd.prediction_period,
            rfm_lookback: s.rfm.lookback,
            rfm_score_levels: s.rfm.score_levels,
            rfm_segment_rules: s
                .rfm
                .segment_rules
                .iter()
                .map(|r| (r.segment, r.bounds))
                .collect(),
            analysable_properties: s.analysable_properties.clone(),
        }
    }
}

impl From<Stored> for ModelSettings {
    fn from(s: Stored) -> Self {
        ModelSettings {
            time_zone: s.time_zone,
            week_start: s.week_start,
            purchase_event: s.purchase_event.map(from_stored),
            value_field: s.value_field,
            lifecycle: LifecycleSettings {
                interval: s.lifecycle_interval,
                qualifying: s
                    .lifecycle_qualifying
                    .into_iter()
                    .map(from_stored)
                    .collect(),
                churn_intervals: s.lifecycle_churn_intervals,
            },
            churn: ChurnSettings {
                inactivity_rules: s
                    .inactivity_rules
                    .into_iter()
                    .map(|r| RuleSettings {
                        segment: r.segment,
                        threshold: r.threshold,
                        suggestion_percentile: r.suggestion_percentile,
                    })
                    .collect(),
                qualifying: s.churn_qualifying.into_iter().map(from_stored).collect(),
                model: s.churn_model,
                model_events: s.churn_model_events,
                bg_nbd: BgNbdSettings {
                    fit_window: s.fit_window,
                    refit_interval: s.refit_interval,
                    fixed_parameters: s.fixed_parameters,
                    prediction_period: s.prediction_period,
                },
            },
            rfm: RfmSettings {
                lookback: s.rfm_lookback,
                score_levels: s.rfm_score_levels,
                segment_rules: s
                    .rfm_segment_rules
                    .into_iter()
                    .map(|(segment, bounds)| SegmentRuleSettings { segment, bounds })
                    .collect(),
            },
            analysable_properties: s.analysable_properties,
        }
    }
}

/// The stored settings of a tenant.
#[derive(Debug, Clone)]
pub struct StoredSettings {
    /// The settings as set.
    pub settings: ModelSettings,
    /// The revision (the etag).
    pub revision: i64,
    /// When they last changed.
    pub updated_at: DateTime<Utc>,
}

fn decode(json: serde_json::Value) -> Result<ModelSettings, sqlx::Error> {
    serde_json::from_value::<Stored>(json)
        .map(ModelSettings::from)
        .map_err(|err| sqlx::Error::Decode(Box::new(err)))
}

/// A settings row as read: the JSON decoded.
fn stored(
    (json, revision, updated_at): (serde_json::Value, i64, DateTime<Utc>),
) -> Result<StoredSettings, sqlx::Error> {
    Ok(StoredSettings {
        settings: decode(json)?,
        revision,
        updated_at,
    })
}

/// The tenant's settings; `None` before the first change.
pub async fn get(pool: &PgPool, tenant: &str) -> Result<Option<StoredSettings>, sqlx::Error> {
    let row: Option<(serde_json::Value, i64, DateTime<Utc>)> = sqlx::query_as(
        "SELECT settings, revision, updated_at FROM modeling.model_settings WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_optional(pool)
    .await?;
    row.map(stored).transpose()
}

/// The property paths the tenant marked analysable (empty before the first change): read
/// before every journey query, so only this one JSON field is sent back.
pub async fn analysable_properties(
    pool: &PgPool,
    tenant: &str,
) -> Result<Vec<String>, sqlx::Error> {
    let paths: Option<Vec<String>> = sqlx::query_scalar(
        "SELECT ARRAY(SELECT jsonb_array_elements_text(settings->'analysable_properties'))
           FROM modeling.model_settings WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_optional(pool)
    .await?;
    Ok(paths.unwrap_or_default())
}

/// The tenant's settings, the row locked until the transaction ends; `None` before the
/// first change (then concurrent first writes are told apart by the insert).
pub async fn get_for_update(
    conn: &mut PgConnection,
    tenant: &str,
) -> Result<Option<StoredSettings>, sqlx::Error> {
    let row: Option<(serde_json::Value, i64, DateTime<Utc>)> = sqlx::query_as(
        "SELECT settings, revision, updated_at FROM modeling.model_settings
          WHERE tenant_id = $1 FOR UPDATE",
    )
    .bind(tenant)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(stored).transpose()
}

/// Stores `settings` as the revision after `revision` (0: none yet); `None` when another
/// write got there first.
pub async fn put(
    conn: &mut PgConnection,
    tenant: &str,
    settings: &ModelSettings,
    revision: i64,
) -> Result<Option<(i64, DateTime<Utc>)>, sqlx::Error> {
    let json = serde_json::to_value(Stored::from(settings))
        .map_err(|err| sqlx::Error::Encode(Box::new(err)))?;
    let row: Option<(i64, DateTime<Utc>)> = if revision == 0 {
        sqlx::query_as(
            "INSERT INTO modeling.model_settings (tenant_id, settings, revision)
             VALUES ($1, $2, 1)
             ON CONFLICT (tenant_id) DO NOTHING
             RETURNING revision, updated_at",
        )
        .bind(tenant)
        .bind(json)
        .fetch_optional(&mut *conn)
        .await?
    } else {
        sqlx::query_as(
            "UPDATE modeling.model_settings
                SET settings = $2, revision = revision + 1, updated_at = now()
              WHERE tenant_id = $1 AND revision = $3
          RETURNING revision, updated_at",
        )
        .bind(tenant)
        .bind(json)
        .bind(revision)
        .fetch_optional(&mut *conn)
        .await?
    };
    Ok(row)
}

/// Whether an update with `request_id` was applied in the last day.
pub async fn request_seen(
    conn: &mut PgConnection,
    tenant: &str,
    request_id: &str,
) -> Result<bool, sqlx::Error> {
    let seen: Option<i64> = sqlx::query_scalar(
        "SELECT revision FROM modeling.model_settings_requests
          WHERE tenant_id = $1 AND request_id = $2 AND created_at > now() - interval '1 day'",
    )
    .bind(tenant)
    .bind(request_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(seen.is_some())
}

/// Records that the update with `request_id` stored `revision`, forgetting ids older than a
/// day.
pub async fn record_request(
    conn: &mut PgConnection,
    tenant: &str,
    request_id: &str,
    revision: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "DELETE FROM modeling.model_settings_requests WHERE created_at < now() - interval '1 day'",
    )
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO modeling.model_settings_requests (tenant_id, request_id, revision)
         VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id, request_id)
         DO UPDATE SET revision = EXCLUDED.revision, created_at = now()",
    )
    .bind(tenant)
    .bind(request_id)
    .bind(revision)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The persons `ids` redirect to (merged persons answer with their survivor); ids without a
/// redirect are absent.
pub async fn survivors(
    pool: &PgPool,
    tenant: &str,
    ids: &[uuid::Uuid],
) -> Result<std::collections::HashMap<uuid::Uuid, uuid::Uuid>, sqlx::Error> {
    let rows: Vec<(uuid::Uuid, uuid::Uuid)> = sqlx::query_as(
        "SELECT from_person, to_person FROM modeling.person_redirects
          WHERE tenant_id = $1 AND from_person = ANY($2)",
    )
    .bind(tenant)
    .bind(ids)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().collect())
}
