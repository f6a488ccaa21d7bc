//! Trigger definitions fire in the transaction that appends their raw triggers: a definition
//! picks its type (and target values), each person at most as often as its cap allows across
//! transactions, and the raw log's readers never see a definition's triggers.

use chrono::Utc;
use sqlx::PgPool;
use touchline_db::testing::TestDatabase;
use touchline_modeling::store::activation::{
    self as store, DefinitionSpec, LIFECYCLE_STAGE_CHANGED, ModelTrigger, RFM_SEGMENT_CHANGED,
    TriggerFilter,
};
use uuid::Uuid;

const T: &str = "t";

async fn migrated() -> anyhow::Result<(TestDatabase, PgPool)> {
    let db = TestDatabase::create().await?;
    let pool = db
        .migrated_pool(touchline_modeling::SCHEMA, &touchline_modeling::MIGRATOR)
        .await?;
    Ok((db, pool))
}

fn stage_change(person: u128, to: i16) -> ModelTrigger {
    ModelTrigger {
        trigger_type: LIFECYCLE_STAGE_CHANGED,
        person: Uuid::from_u128(person),
        previous_value: 2,
        current_value: to,
        churn_score: None,
    }
}

/// Appends raw triggers in a transaction of their own, as the model-output worker does.
async fn append(pool: &PgPool, triggers: &[ModelTrigger]) -> anyhow::Result<()> {
    let mut tx = pool.begin().await?;
    store::append_model_triggers(&mut tx, T, triggers, Utc::now()).await?;
    tx.commit().await?;
    Ok(())
}

async fn fired(pool: &PgPool, definition: &str) -> anyhow::Result<Vec<(u128, i16)>> {
    let filter = TriggerFilter {
        definitions: vec![definition.to_owned()],
        ..TriggerFilter::default()
    };
    Ok(store::triggers_after(pool, T, &filter, 0, 1_000)
        .await?
        .iter()
        .map(|t| (t.person_id.as_u128(), t.current_value))
        .collect())
}

#[tokio::test]
async fn definitions_pick_their_targets_and_hold_each_person_to_the_cap() -> anyhow::Result<()> {
    let (_db, pool) = migrated().await?;
    let mut conn = pool.acquire().await?;
    // Returning customers, at most twice a day each; and every RFM change, uncapped.
    let returning = DefinitionSpec {
        display_name: "win-back".to_owned(),
        trigger_type: LIFECYCLE_STAGE_CHANGED,
        segment_id: String::new(),
        target_values: vec![3],
        cap_max: Some(2),
        cap_period_secs: Some(86_400),
    };
    assert!(store::insert_definition(&mut conn, T, "win-back", &returning).await?);
    let rfm = DefinitionSpec {
        trigger_type: RFM_SEGMENT_CHANGED,
        target_values: Vec::new(),
        cap_max: None,
        cap_period_secs: None,
        ..returning.clone()
    };
    assert!(store::insert_definition(&mut conn, T, "rfm", &rfm).await?);
    drop(conn);

    // Person 1 returns three times in one transaction and once more later; person 2 turns
    // dormant (stage 4), which the definition does not pick.
    append(
        &pool,
        &[
            stage_change(1, 3),
            stage_change(2, 4),
            stage_change(1, 3),
            stage_change(1, 3),
        ],
    )
    .await?;
    append(&pool, &[stage_change(1, 3), stage_change(2, 3)]).await?;
    assert_eq!(
        fired(&pool, "win-back").await?,
        vec![(1, 3), (1, 3), (2, 3)]
    );
    let definition = store::definition(&pool, T, "win-back")
        .await?
        .ok_or_else(|| anyhow::anyhow!("the definition is kept"))?;
    assert_eq!(definition.suppressed_count, 2, "two returns over the cap");
    assert!(fired(&pool, "rfm").await?.is_empty());

    // The raw log holds every change and none of the definitions' triggers.
    let raw = store::triggers_after(&pool, T, &TriggerFilter::default(), 0, 1_000).await?;
    assert_eq!(raw.len(), 6);
    assert!(raw.iter().all(|t| t.definition_id.is_empty()));

    // A cap counts only its own period: with a one-minute window, triggers two minutes old
    // no longer count.
    sqlx::query(
        "UPDATE modeling.triggers SET triggered_at = triggered_at - interval '2 minutes'
          WHERE tenant_id = $1",
    )
    .bind(T)
    .execute(&pool)
    .await?;
    let mut conn = pool.acquire().await?;
    let minute = DefinitionSpec {
        cap_period_secs: Some(60),
        ..returning
    };
    store::update_definition(&mut conn, T, "win-back", &minute).await?;
    drop(conn);
    append(
        &pool,
        &[stage_change(1, 3), stage_change(1, 3), stage_change(1, 3)],
    )
    .await?;
    assert_eq!(
        fired(&pool, "win-back").await?.len(),
        5,
        "two more fit the new period"
    );
    Ok(())
}
