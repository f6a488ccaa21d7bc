//! Per-tenant state cleaning depends on: pseudonymisation keys, privacy
//! settings, and the active dictionary version.

use chrono::{DateTime, Utc};
use rand::RngCore as _;
use sqlx::PgPool;

use crate::domain::dictionary::Dictionary;
use crate::domain::pii::{DEFAULT_DIRECT_TYPES, PrivacySettings, TenantKey};

/// The tenant's current key, creating version 1 on first use.
pub async fn current_key(pool: &PgPool, tenant: &str) -> Result<TenantKey, sqlx::Error> {
    let mut secret = vec![0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    sqlx::query(
        "INSERT INTO governance.tenant_keys (tenant_id, version, secret) VALUES ($1, 1, $2)
         ON CONFLICT DO NOTHING",
    )
    .bind(tenant)
    .bind(&secret)
    .execute(pool)
    .await?;
    let (version, secret) = sqlx::query_as::<_, (i32, Vec<u8>)>(
        "SELECT version, secret FROM governance.tenant_keys WHERE tenant_id = $1
          ORDER BY version DESC LIMIT 1",
    )
    .bind(tenant)
    .fetch_one(pool)
    .await?;
    Ok(TenantKey { version, secret })
}

/// Adds the next key version, which becomes current: new pseudonyms carry
/// it, old ones keep theirs.
pub async fn rotate_key(pool: &PgPool, tenant: &str) -> Result<TenantKey, sqlx::Error> {
    current_key(pool, tenant).await?;
    let mut secret = vec![0u8; 32];
    rand::rng().fill_bytes(&mut secret);
    let version: i32 = sqlx::query_scalar(
        "INSERT INTO governance.tenant_keys (tenant_id, version, secret)
         SELECT $1, COALESCE(MAX(version), 0) + 1, $2 FROM governance.tenant_keys WHERE tenant_id = $1
         RETURNING version",
    )
    .bind(tenant)
    .bind(&secret)
    .fetch_one(pool)
    .await?;
    Ok(TenantKey { version, secret })
}

/// The tenant's privacy settings (defaults plus its overrides and blocks).
pub async fn privacy_settings(
    pool: &PgPool,
    tenant: &str,
    default_country_code: &str,
) -> Result<PrivacySettings, sqlx::Error> {
    let mut settings = PrivacySettings {
        default_country_code: default_country_code.to_owned(),
        ..PrivacySettings::default()
    };
    if let Some((country_code, extra)) = sqlx::query_as::<_, (String, Vec<String>)>(
        "SELECT default_country_code, direct_types FROM governance.privacy_settings WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_optional(pool)
    .await?
    {
        settings.default_country_code = country_code;
        settings.direct_types.extend(extra);
    }
    let blocked = sqlx::query_as::<_, (String, String)>(
        "SELECT identifier_type, value FROM governance.blocked_identifiers WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_all(pool)
    .await?;
    for (kind, value) in blocked {
        settings.blocked.insert((kind, value.trim().to_lowercase()));
    }
    Ok(settings)
}

/// Replaces a tenant's privacy settings (validated, blocked values in their
/// normalised form) in one transaction; returns when they changed.
pub async fn replace_privacy_settings(
    pool: &PgPool,
    tenant: &str,
    settings: &PrivacySettings,
) -> Result<DateTime<Utc>, sqlx::Error> {
    let extra: Vec<&str> = settings
        .direct_types
        .iter()
        .map(String::as_str)
        .filter(|t| !DEFAULT_DIRECT_TYPES.contains(t))
        .collect();
    let mut tx = pool.begin().await?;
    let changed: DateTime<Utc> = sqlx::query_scalar(
        "INSERT INTO governance.privacy_settings (tenant_id, default_country_code, direct_types)
         VALUES ($1, $2, $3)
         ON CONFLICT (tenant_id) DO UPDATE
           SET default_country_code = EXCLUDED.default_country_code,
               direct_types = EXCLUDED.direct_types, updated_at = now()
         RETURNING updated_at",
    )
    .bind(tenant)
    .bind(&settings.default_country_code)
    .bind(&extra)
    .fetch_one(&mut *tx)
    .await?;
    sqlx::query("DELETE FROM governance.blocked_identifiers WHERE tenant_id = $1")
        .bind(tenant)
        .execute(&mut *tx)
        .await?;
    let (kinds, values): (Vec<&str>, Vec<&str>) = settings
        .blocked
        .iter()
        .map(|(kind, value)| (kind.as_str(), value.as_str()))
        .unzip();
    sqlx::query(
        "INSERT INTO governance.blocked_identifiers (tenant_id, identifier_type, value)
         SELECT $1, k, v FROM UNNEST($2::text[], $3::text[]) AS b(k, v)",
    )
    .bind(tenant)
    .bind(&kinds)
    .bind(&values)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(changed)
}

/// When the tenant's privacy settings last changed (`None`: never set).
pub async fn privacy_updated_at(
    pool: &PgPool,
    tenant: &str,
) -> Result<Option<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar("SELECT updated_at FROM governance.privacy_settings WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_optional(pool)
        .await
}

/// The number of the tenant's active dictionary version (0: none).
pub async fn active_version(pool: &PgPool, tenant: &str) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT COALESCE(MAX(version), 0) FROM governance.dictionary_versions WHERE tenant_id = $1",
    )
    .bind(tenant)
    .fetch_one(pool)
    .await
}

/// A published dictionary version (`None`: no such version, or unreadable).
pub async fn dictionary(
    pool: &PgPool,
    tenant: &str,
    version: i64,
) -> Result<Option<Dictionary>, sqlx::Error> {
    let value: Option<serde_json::Value> = sqlx::query_scalar(
        "SELECT dictionary FROM governance.dictionary_versions WHERE tenant_id = $1 AND version = $2",
    )
    .bind(tenant)
    .bind(version)
    .fetch_optional(pool)
    .await?;
    Ok(value.and_then(|v| serde_json::from_value(v).ok()))
}
