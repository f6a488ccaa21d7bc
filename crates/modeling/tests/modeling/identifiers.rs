//! Who holds each identifier, as the identity change log moves them: links (a new value, a
//! value handed over to a new holder), merges, splits and erasures; and the queue of persons
//! whose identifiers changed, kept only while a segment publishes identifier updates.

use std::collections::HashSet;

use sqlx::PgPool;
use touchline_db::testing::TestDatabase;
use touchline_modeling::journeys::segments::Rule;
use touchline_modeling::merges::Merge;
use touchline_modeling::store::segments::{self, Definition};
use touchline_modeling::store::{changes, identifiers};
use touchline_proto::common::v1::Identifier;
use uuid::Uuid;

const T: &str = "t";

async fn migrated() -> anyhow::Result<(TestDatabase, PgPool)> {
    let db = TestDatabase::create().await?;
    let pool = db
        .migrated_pool(touchline_modeling::SCHEMA, &touchline_modeling::MIGRATOR)
        .await?;
    Ok((db, pool))
}

fn id(id_type: &str, value: &str) -> Identifier {
    Identifier {
        r#type: id_type.to_owned(),
        value: value.to_owned(),
        scope: String::new(),
    }
}

fn persons(n: &[u128]) -> HashSet<Uuid> {
    n.iter().map(|n| Uuid::from_u128(*n)).collect()
}

/// A segment that publishes an update when a member's card changes.
fn exporting_cards() -> Definition {
    Definition {
        display_name: "cards".to_owned(),
        description: String::new(),
        rule: Rule::AllOf(Vec::new()),
        reevaluation_secs: 3_600,
        identifier_update_types: vec!["card".to_owned()],
    }
}

async fn queued(pool: &PgPool) -> anyhow::Result<Vec<(Uuid, String)>> {
    let mut tx = pool.begin().await?;
    let mut taken = identifiers::take_updates(&mut tx, T).await?;
    tx.commit().await?;
    taken.sort();
    Ok(taken)
}

#[tokio::test]
async fn links_and_handovers_move_owners_and_queue_only_while_a_segment_exports()
-> anyhow::Result<()> {
    let (db, pool) = migrated().await?;
    let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
    let mut conn = pool.acquire().await?;
    assert_eq!(identifiers::revision(&pool, T).await?, 0);

    // Nobody publishes identifier updates yet: links are recorded, nothing is queued.
    identifiers::link(&mut conn, T, &[(a, &[id("phone", "p1"), id("card", "c1")])]).await?;
    identifiers::link(&mut conn, T, &[(b, &[id("card", "c2")])]).await?;
    assert_eq!(
        identifiers::holders(&pool, T, "card", "").await?,
        persons(&[1, 2])
    );
    assert!(queued(&pool).await?.is_empty());
    let before = identifiers::revision(&pool, T).await?;
    assert!(before >= 2);

    // A segment exporting cards: from now on changes are queued.
    assert!(segments::insert(&mut conn, T, "cards", &exporting_cards()).await?);

    // The recycled phone goes to b: a no longer holds it; both are queued.
    identifiers::link(&mut conn, T, &[(b, &[id("phone", "p1")])]).await?;
    assert_eq!(
        identifiers::holders(&pool, T, "phone", "").await?,
        persons(&[2])
    );
    assert_eq!(
        queued(&pool).await?,
        vec![(a, "phone".to_owned()), (b, "phone".to_owned())]
    );
    assert!(identifiers::revision(&pool, T).await? > before);

    // A run of links with a handover inside it: the last holder wins, both are queued.
    let email = [id("email", "e1")];
    identifiers::link(&mut conn, T, &[(a, &email), (b, &email)]).await?;
    assert_eq!(
        identifiers::holders(&pool, T, "email", "").await?,
        persons(&[2])
    );
    assert_eq!(
        queued(&pool).await?,
        vec![(a, "email".to_owned()), (b, "email".to_owned())]
    );

    drop(db);
    Ok(())
}

/// A tenant where `a` holds phone p1 and card c1, `b` card c2, and a segment exports cards.
async fn two_holders(pool: &PgPool) -> anyhow::Result<(Uuid, Uuid)> {
    let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
    let mut conn = pool.acquire().await?;
    assert!(segments::insert(&mut conn, T, "cards", &exporting_cards()).await?);
    identifiers::link(&mut conn, T, &[(a, &[id("phone", "p1"), id("card", "c1")])]).await?;
    identifiers::link(&mut conn, T, &[(b, &[id("card", "c2")])]).await?;
    queued(pool).await?;
    Ok((a, b))
}

#[tokio::test]
async fn merges_splits_and_erasures_move_or_remove_what_persons_hold() -> anyhow::Result<()> {
    let (db, pool) = migrated().await?;
    let (a, b) = two_holders(&pool).await?;
    let c = Uuid::from_u128(3);
    let mut conn = pool.acquire().await?;

    // b is merged into a: a holds everything, and is queued for each type it gained.
    let mut tx = pool.begin().await?;
    changes::apply_merges(
        &mut tx,
        T,
        &[Merge {
            survivor: a,
            merged: vec![b],
        }],
    )
    .await?;
    tx.commit().await?;
    assert_eq!(
        identifiers::holders(&pool, T, "card", "").await?,
        persons(&[1])
    );
    assert_eq!(
        identifiers::holders(&pool, T, "phone", "").await?,
        persons(&[1])
    );
    assert_eq!(queued(&pool).await?, vec![(a, "card".to_owned())]);

    // c2 is split off to c: both are queued.
    identifiers::split(&mut conn, T, a, c, &[id("card", "c2")]).await?;
    assert_eq!(
        identifiers::holders(&pool, T, "card", "").await?,
        persons(&[1, 3])
    );
    assert_eq!(
        queued(&pool).await?,
        vec![(a, "card".to_owned()), (c, "card".to_owned())]
    );

    // A scope narrows the holders.
    let openid = [Identifier {
        r#type: "wechat_openid".to_owned(),
        value: "o-1".to_owned(),
        scope: "wx-app".to_owned(),
    }];
    identifiers::link(&mut conn, T, &[(c, &openid)]).await?;
    assert_eq!(
        identifiers::holders(&pool, T, "wechat_openid", "wx-app").await?,
        persons(&[3])
    );
    assert!(
        identifiers::holders(&pool, T, "wechat_openid", "other")
            .await?
            .is_empty()
    );

    // Erasing c leaves nothing of c: owners and queued updates alike.
    let mut tx = pool.begin().await?;
    changes::erase(&mut tx, T, &[c], "").await?;
    tx.commit().await?;
    assert_eq!(
        identifiers::holders(&pool, T, "card", "").await?,
        persons(&[1])
    );
    assert!(
        identifiers::holders(&pool, T, "wechat_openid", "")
            .await?
            .is_empty()
    );
    assert!(queued(&pool).await?.is_empty());
    drop(db);
    Ok(())
}
