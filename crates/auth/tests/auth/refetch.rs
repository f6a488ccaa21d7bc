//! JWKS refetch on unknown `kid`, bounded by the cooldown, for URL and file sources.

use std::time::Duration;

use touchline_auth::{AuthConfig, AuthError, SigningAlgorithm, Verifier, mint_with_pem};

use crate::helpers::*;

fn rsa2_token() -> String {
    mint_with_pem(SigningAlgorithm::Rs256, RSA2_PEM, Some(RSA2_KID), &claims()).expect("mint")
}

fn url_config(url: &str, cooldown_secs: u64) -> AuthConfig {
    AuthConfig {
        issuer: ISSUER.to_owned(),
        audience: AUDIENCE.to_owned(),
        jwks_url: Some(url.to_owned()),
        jwks_refetch_cooldown_secs: cooldown_secs,
        ..AuthConfig::default()
    }
}

#[tokio::test]
async fn url_source_refetches_once_per_cooldown() {
    let server = JwksServer::start(JWKS).await;
    let verifier = Verifier::from_config(&url_config(&server.url, 3600))
        .await
        .expect("verifier");
    assert_eq!(server.hits(), 1, "initial load");

    // Known keys never cause a fetch.
    verifier
        .verify(&rs256(RSA1_KID, &claims()))
        .await
        .expect("known key");
    verifier
        .verify(&es256(EC1_KID, &claims()))
        .await
        .expect("known key");
    assert_eq!(server.hits(), 1);

    // First unknown kid: one refetch, still unknown because the set did not change.
    let err = verifier
        .verify(&rsa2_token())
        .await
        .expect_err("not yet published");
    assert!(matches!(err, AuthError::UnknownKey { .. }), "{err:?}");
    assert_eq!(server.hits(), 2);

    // The key is published now, but the cooldown has not passed: no fetch, still refused.
    server.serve(JWKS_ROTATED).await;
    for _ in 0..3 {
        let err = verifier
            .verify(&rsa2_token())
            .await
            .expect_err("in cooldown");
        assert!(matches!(err, AuthError::UnknownKey { .. }), "{err:?}");
    }
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn url_source_picks_up_a_rotated_key() {
    let server = JwksServer::start(JWKS).await;
    let verifier = Verifier::from_config(&url_config(&server.url, 30))
        .await
        .expect("verifier");
    server.serve(JWKS_ROTATED).await;

    // The startup load does not count against the cooldown, so rotation is seen at once.
    let principal = verifier.verify(&rsa2_token()).await.expect("rotated key");
    assert_eq!(principal.subject, "alice");
    assert_eq!(server.hits(), 2);

    // Now known: further tokens with it do not fetch.
    verifier.verify(&rsa2_token()).await.expect("known now");
    assert_eq!(server.hits(), 2);

    // A clone shares the refreshed keys and the cooldown.
    let clone = verifier.clone();
    assert!(matches!(
        clone.verify(&rs256("ghost", &claims())).await,
        Err(AuthError::UnknownKey { .. })
    ));
    assert_eq!(server.hits(), 2);
}

#[tokio::test]
async fn zero_cooldown_refetches_on_every_unknown_kid() {
    let server = JwksServer::start(JWKS).await;
    let verifier = Verifier::from_config(&url_config(&server.url, 0))
        .await
        .expect("verifier");
    for expected in 2..=4 {
        assert!(verifier.verify(&rs256("ghost", &claims())).await.is_err());
        assert_eq!(server.hits(), expected);
    }
}

#[tokio::test(start_paused = true)]
async fn file_source_is_reread_after_the_cooldown() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, JWKS).expect("write jwks");
    let verifier = Verifier::from_config(&AuthConfig {
        jwks_file: Some(path.clone()),
        jwks_refetch_cooldown_secs: 30,
        ..file_config()
    })
    .await
    .expect("verifier");

    // First unknown kid re-reads the (unchanged) file and starts the cooldown.
    assert!(matches!(
        verifier.verify(&rsa2_token()).await,
        Err(AuthError::UnknownKey { .. })
    ));
    std::fs::write(&path, JWKS_ROTATED).expect("rotate jwks");

    // Inside the cooldown the new file is not looked at.
    tokio::time::advance(Duration::from_secs(29)).await;
    assert!(matches!(
        verifier.verify(&rsa2_token()).await,
        Err(AuthError::UnknownKey { .. })
    ));

    // Past it, the next unknown kid re-reads and the rotated key verifies.
    tokio::time::advance(Duration::from_secs(2)).await;
    let principal = verifier.verify(&rsa2_token()).await.expect("rotated key");
    assert_eq!(principal.tenant, "acme");
}

#[tokio::test]
async fn failed_refetch_keeps_the_previous_keys() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("jwks.json");
    std::fs::write(&path, JWKS).expect("write jwks");
    let verifier = Verifier::from_config(&AuthConfig {
        jwks_file: Some(path.clone()),
        jwks_refetch_cooldown_secs: 0,
        ..file_config()
    })
    .await
    .expect("verifier");
    std::fs::write(&path, "{ broken").expect("break jwks");
    assert!(matches!(
        verifier.verify(&rsa2_token()).await,
        Err(AuthError::UnknownKey { .. })
    ));
    verifier
        .verify(&rs256(RSA1_KID, &claims()))
        .await
        .expect("old keys still serve");
}
