//! Acceptance and every rejection path of `Verifier::verify`.

use chrono::{Duration as ChronoDuration, Utc};
use secrecy::SecretString;
use serde_json::json;
use touchline_auth::{
    AuthConfig, AuthError, SigningAlgorithm, Verifier, mint_hs256, mint_with_pem,
};

use crate::helpers::*;

const DEV_SECRET: &str = "a-development-secret-of-32-bytes!";

fn hs256_config(allow: bool) -> AuthConfig {
    AuthConfig {
        hs256_secret: Some(SecretString::from(DEV_SECRET)),
        allow_hs256: allow,
        ..file_config()
    }
}

#[tokio::test]
async fn valid_rs256_token_yields_principal() {
    let verifier = file_verifier().await;
    let principal = verifier
        .verify(&rs256(RSA1_KID, &claims()))
        .await
        .expect("valid token");
    assert_eq!(principal.subject, "alice");
    assert_eq!(principal.tenant, "acme");
    assert_eq!(principal.roles, ["analyst"]);
    assert!(principal.has_scope("events:write"));
    assert!(principal.has_scope("reports:read"));
    assert!(!principal.has_scope("admin"));
}

#[tokio::test]
async fn valid_es256_token_yields_principal() {
    let verifier = file_verifier().await;
    let principal = verifier
        .verify(&es256(EC1_KID, &claims()))
        .await
        .expect("valid token");
    assert_eq!(principal.subject, "alice");
    assert!(principal.has_scope("events:write"));
}

#[tokio::test]
async fn scp_array_and_scope_string_are_both_read() {
    let now = Utc::now().timestamp();
    let token = rs256_raw(
        RSA1_KID,
        &json!({"iss": ISSUER, "aud": [AUDIENCE, "other"], "sub": "svc", "tenant": "acme",
                "exp": now + 600, "scope": "a", "scp": ["b", "c"]}),
    );
    let principal = file_verifier().await.verify(&token).await.expect("valid");
    let scopes: Vec<&str> = principal.scopes.iter().map(String::as_str).collect();
    assert_eq!(scopes, ["a", "b", "c"]);
    assert!(principal.roles.is_empty());
}

#[tokio::test]
async fn expired_token_is_rejected() {
    let verifier = file_verifier().await;
    let token = rs256(RSA1_KID, &expired_claims(ChronoDuration::minutes(10)));
    let err = verifier.verify(&token).await.expect_err("expired");
    assert!(matches!(err, AuthError::Expired), "{err:?}");
    assert_eq!(err.client_message(), "token expired");
}

#[tokio::test]
async fn leeway_tolerates_recent_expiry_only_when_configured() {
    // Expired 10 minutes ago: inside a 1 hour leeway, outside a zero leeway.
    let token = rs256(RSA1_KID, &expired_claims(ChronoDuration::minutes(10)));
    let lenient = Verifier::from_config(&AuthConfig {
        leeway_secs: 3600,
        ..file_config()
    })
    .await
    .expect("verifier");
    assert!(lenient.verify(&token).await.is_ok());
    let strict = Verifier::from_config(&AuthConfig {
        leeway_secs: 0,
        ..file_config()
    })
    .await
    .expect("verifier");
    assert!(matches!(
        strict.verify(&token).await,
        Err(AuthError::Expired)
    ));
}

#[tokio::test]
async fn token_not_yet_valid_is_rejected_and_past_nbf_accepted() {
    let verifier = file_verifier().await;
    let mut future = claims();
    future.not_before = Some(Utc::now() + ChronoDuration::hours(1));
    let err = verifier
        .verify(&rs256(RSA1_KID, &future))
        .await
        .expect_err("nbf in the future");
    assert!(matches!(err, AuthError::NotYetValid), "{err:?}");

    let mut past = claims();
    past.not_before = Some(Utc::now() - ChronoDuration::minutes(5));
    assert!(verifier.verify(&rs256(RSA1_KID, &past)).await.is_ok());
}

#[tokio::test]
async fn wrong_issuer_is_rejected() {
    let mut c = claims();
    c.issuer = "https://someone-else.test".to_owned();
    let err = file_verifier()
        .await
        .verify(&rs256(RSA1_KID, &c))
        .await
        .expect_err("wrong iss");
    assert!(matches!(err, AuthError::WrongIssuer), "{err:?}");
}

#[tokio::test]
async fn wrong_audience_is_rejected() {
    let mut c = claims();
    c.audience = "another-api".to_owned();
    let err = file_verifier()
        .await
        .verify(&es256(EC1_KID, &c))
        .await
        .expect_err("wrong aud");
    assert!(matches!(err, AuthError::WrongAudience), "{err:?}");
}

#[tokio::test]
async fn signature_by_another_key_is_rejected() {
    // Signed by RSA key 2 but claiming to be key 1.
    let token =
        mint_with_pem(SigningAlgorithm::Rs256, RSA2_PEM, Some(RSA1_KID), &claims()).expect("mint");
    let err = file_verifier()
        .await
        .verify(&token)
        .await
        .expect_err("bad signature");
    assert!(matches!(err, AuthError::BadSignature), "{err:?}");
}

#[tokio::test]
async fn tampered_payload_is_rejected() {
    let token = rs256(RSA1_KID, &claims());
    let mut parts: Vec<String> = token.split('.').map(str::to_owned).collect();
    let other = rs256(RSA1_KID, &claims().with_scopes(["admin"]));
    parts[1] = other.split('.').nth(1).expect("payload").to_owned();
    let err = file_verifier()
        .await
        .verify(&parts.join("."))
        .await
        .expect_err("tampered");
    assert!(matches!(err, AuthError::BadSignature), "{err:?}");
}

#[tokio::test]
async fn algorithm_mismatch_with_key_is_rejected() {
    // A valid ES256 signature, but naming the RSA key.
    let err = file_verifier()
        .await
        .verify(&es256(RSA1_KID, &claims()))
        .await
        .expect_err("mismatch");
    assert!(
        matches!(&err, AuthError::AlgorithmMismatch { token_alg, key_alg }
            if token_alg == "ES256" && key_alg == "RS256"),
        "{err:?}"
    );
}

#[tokio::test]
async fn hs256_is_rejected_unless_enabled() {
    let token = mint_hs256(DEV_SECRET.as_bytes(), &claims()).expect("mint");
    // Only a JWKS: HS256 has no key at all.
    let err = file_verifier()
        .await
        .verify(&token)
        .await
        .expect_err("hs256 off");
    assert!(
        matches!(err, AuthError::AlgorithmNotAllowed { .. }),
        "{err:?}"
    );
    // A secret alone is not enough: the flag must be set too.
    let secret_only = Verifier::from_config(&hs256_config(false))
        .await
        .expect("verifier");
    let err = secret_only.verify(&token).await.expect_err("flag off");
    assert!(
        matches!(err, AuthError::AlgorithmNotAllowed { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn hs256_works_when_enabled_and_checks_the_secret() {
    let verifier = Verifier::from_config(&hs256_config(true))
        .await
        .expect("verifier");
    let token = mint_hs256(DEV_SECRET.as_bytes(), &claims()).expect("mint");
    let principal = verifier.verify(&token).await.expect("dev token");
    assert_eq!(principal.tenant, "acme");
    // JWKS tokens keep working next to HS256.
    assert!(verifier.verify(&es256(EC1_KID, &claims())).await.is_ok());

    let forged = mint_hs256(b"another-secret-another-secret-xx", &claims()).expect("mint");
    assert!(matches!(
        verifier.verify(&forged).await,
        Err(AuthError::BadSignature)
    ));
}

#[tokio::test]
async fn hs256_signed_with_a_public_key_cannot_impersonate_jwks_keys() {
    // Classic confusion: HMAC keyed with public key bytes, naming the RSA kid. HS256 is only
    // ever checked against the configured secret, so this fails even with HS256 enabled.
    let verifier = Verifier::from_config(&hs256_config(true))
        .await
        .expect("verifier");
    let public_jwks = JWKS.as_bytes();
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    header.kid = Some(RSA1_KID.to_owned());
    let now = Utc::now().timestamp();
    let payload = json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "tenant": "acme",
                         "exp": now + 600});
    let token = jsonwebtoken::encode(
        &header,
        &payload,
        &jsonwebtoken::EncodingKey::from_secret(public_jwks),
    )
    .expect("encode");
    assert!(matches!(
        verifier.verify(&token).await,
        Err(AuthError::BadSignature)
    ));
}

#[tokio::test]
async fn exp_given_as_a_string_is_rejected() {
    let token = rs256_raw(
        RSA1_KID,
        &json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "tenant": "acme",
                "exp": "1999999999"}),
    );
    let err = file_verifier()
        .await
        .verify(&token)
        .await
        .expect_err("string exp");
    assert!(matches!(err, AuthError::InvalidClaims { .. }), "{err:?}");
}

#[tokio::test]
async fn unknown_kid_is_rejected() {
    let err = file_verifier()
        .await
        .verify(&rs256("no-such-key", &claims()))
        .await
        .expect_err("unknown kid");
    assert!(
        matches!(&err, AuthError::UnknownKey { kid: Some(k) } if k == "no-such-key"),
        "{err:?}"
    );
    // The fixture set holds two keys, so a token naming none cannot be matched either.
    let kidless = mint_with_pem(SigningAlgorithm::Rs256, RSA1_PEM, None, &claims()).expect("mint");
    assert!(matches!(
        file_verifier().await.verify(&kidless).await,
        Err(AuthError::UnknownKey { kid: None })
    ));
}

#[tokio::test]
async fn required_claims_must_be_present() {
    let verifier = file_verifier().await;
    let now = Utc::now().timestamp();
    let full = json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "alice", "tenant": "acme",
                      "exp": now + 600});
    for claim in ["exp", "iss", "aud", "sub", "tenant"] {
        let mut payload = full.clone();
        payload.as_object_mut().expect("object").remove(claim);
        let err = verifier
            .verify(&rs256_raw(RSA1_KID, &payload))
            .await
            .expect_err(claim);
        assert!(
            matches!(&err, AuthError::MissingClaim { claim: c } if c == claim),
            "{claim}: {err:?}"
        );
    }
    assert!(verifier.verify(&rs256_raw(RSA1_KID, &full)).await.is_ok());
}

#[tokio::test]
async fn malformed_tokens_are_rejected() {
    let verifier = file_verifier().await;
    for token in ["", "abc", "a.b.c", "eyJhbGciOiJub25lIn0.e30."] {
        let err = verifier.verify(token).await.expect_err(token);
        assert!(
            matches!(err, AuthError::MalformedToken { .. }),
            "{token}: {err:?}"
        );
    }
}

#[tokio::test]
async fn config_errors_are_reported() {
    let none = AuthConfig::default();
    assert!(matches!(
        Verifier::from_config(&none).await,
        Err(AuthError::Config { .. })
    ));
    let both = AuthConfig {
        jwks_url: Some("http://127.0.0.1:9/jwks".to_owned()),
        ..file_config()
    };
    assert!(matches!(
        Verifier::from_config(&both).await,
        Err(AuthError::Config { .. })
    ));
    let flag_without_secret = AuthConfig {
        allow_hs256: true,
        ..file_config()
    };
    assert!(matches!(
        Verifier::from_config(&flag_without_secret).await,
        Err(AuthError::Config { .. })
    ));
    let missing_file = AuthConfig {
        jwks_file: Some(fixture("does-not-exist.json")),
        ..file_config()
    };
    assert!(matches!(
        Verifier::from_config(&missing_file).await,
        Err(AuthError::JwksFetch { .. })
    ));
    let not_jwks = AuthConfig {
        jwks_file: Some(fixture("README.md")),
        ..file_config()
    };
    assert!(matches!(
        Verifier::from_config(&not_jwks).await,
        Err(AuthError::InvalidJwks { .. })
    ));
}

#[test]
fn verifier_is_send_sync_and_cheap_to_clone() {
    fn assert_send_sync_clone<T: Send + Sync + Clone + 'static>() {}
    assert_send_sync_clone::<Verifier>();
    assert_send_sync_clone::<touchline_auth::AuthLayer>();
}
