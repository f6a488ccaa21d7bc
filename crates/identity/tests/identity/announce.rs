//! A database of a release before LINK changes: upgrading announces every identifier already
//! held, once per person, after each tenant's newest change, so readers of the change log learn
//! who holds what without a rebuild.

use touchline_identity::IdentityApi;
use touchline_proto::identity::v1 as pb;
use uuid::Uuid;

use crate::helpers::{TestDb, event, feed, id, local_cache, resolve};

/// The last migration before identifiers were announced.
const BEFORE_ANNOUNCING: i64 = 8;

async fn hold(db: &TestDb, tenant: &str, person: Uuid, keys: &[(&str, &str, &str)]) {
    sqlx::query("INSERT INTO identity.persons (tenant_id, person_id) VALUES ($1, $2)")
        .bind(tenant)
        .bind(person)
        .execute(&db.pool)
        .await
        .expect("person");
    for (id_type, scope, value) in keys {
        sqlx::query(
            "INSERT INTO identity.identifiers (tenant_id, id_type, id_scope, id_value, person_id)
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(tenant)
        .bind(id_type)
        .bind(scope)
        .bind(value)
        .bind(person)
        .execute(&db.pool)
        .await
        .expect("identifier");
    }
}

fn announced(change: &pb::IdentityChange) -> (String, Vec<(String, String, String)>) {
    assert_eq!(
        change.kind,
        pb::IdentityChangeKind::Link as i32,
        "{change:?}"
    );
    let keys = change
        .moved_identifiers
        .iter()
        .map(|k| (k.r#type.clone(), k.scope.clone(), k.value.clone()))
        .collect();
    (change.person_id.clone(), keys)
}

fn owned(keys: &[(&str, &str, &str)]) -> Vec<(String, String, String)> {
    keys.iter()
        .map(|(t, s, v)| ((*t).to_owned(), (*s).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test]
async fn upgrading_announces_the_identifiers_each_person_already_holds() {
    let db = TestDb::migrated_through(4, BEFORE_ANNOUNCING).await;
    // Tenant a had five changes before the upgrade; tenant b had none.
    sqlx::query("INSERT INTO identity.change_heads (tenant_id, last_sequence) VALUES ('a', 5)")
        .execute(&db.pool)
        .await
        .expect("head");
    // Person ids are time-ordered: the smaller is the older.
    let (older, newer, other) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
    let older_keys = [
        ("member_card", "", "card-1"),
        ("wechat_openid", "wx-app", "o-1"),
    ];
    let newer_keys = [("crm_id", "", "crm-2")];
    let other_keys = [("crm_id", "", "crm-9")];
    hold(&db, "a", newer, &newer_keys).await;
    hold(&db, "a", older, &older_keys).await;
    hold(&db, "b", other, &other_keys).await;

    db.migrate().await;
    let (cache, _) = local_cache().await;
    let api = IdentityApi::new(db.pool.clone(), Some(cache));
    let in_a = feed(&api, "a", 5, 2).await;
    assert_eq!(
        in_a.iter().map(|c| c.sequence).collect::<Vec<_>>(),
        vec![6, 7]
    );
    assert_eq!(
        in_a.iter().map(announced).collect::<Vec<_>>(),
        vec![
            (older.to_string(), owned(&older_keys)),
            (newer.to_string(), owned(&newer_keys)),
        ],
        "oldest person first, every identifier named"
    );
    let in_b = feed(&api, "b", 0, 1).await;
    assert_eq!(in_b.len(), 1);
    assert_eq!(in_b[0].sequence, 1);
    assert_eq!(announced(&in_b[0]), (other.to_string(), owned(&other_keys)));

    // The log goes on after the announcements.
    resolve(&api, "a", vec![event("e-1", vec![id("user_id", "dan")])]).await;
    let next = feed(&api, "a", 7, 1).await;
    assert_eq!(next.first().map(|c| c.sequence), Some(8));
    db.drop().await;
}
