//! A test delivery: one signed POST to a destination's endpoint beside its queue, so a caller
//! can check a URL, a secret or a receiver before triggers flow. Nothing is retried or
//! written down, and the destination's state does not move.

use bytes::Bytes;
use touchline_webhooks::SigningSecret;

use super::attempt::{Classified, classify};
use super::endpoint::secrets;
use crate::error::ModelingError;
use crate::service::Modeling;
use crate::store::activation as store;

/// The body of every test delivery: no triggers, and a flag a receiver can branch on.
const TEST_BODY: &str = r#"{"triggers":[],"test":true}"#;

/// How the endpoint answered a test delivery.
#[derive(Debug, Clone)]
pub struct TestDelivery {
    /// Its `webhook-id`.
    pub webhook_id: String,
    /// The endpoint answered 2xx.
    pub delivered: bool,
    /// The HTTP status; 0 without an answer.
    pub http_status: i32,
    /// What went wrong.
    pub error: String,
    /// How long it took.
    pub duration_ms: i64,
}

impl Modeling {
    /// Sends destination `id` a test delivery now.
    pub async fn test_webhook_destination(
        &self,
        tenant: &str,
        id: &str,
    ) -> Result<TestDelivery, ModelingError> {
        let destination = store::destination(&self.pool, tenant, id)
            .await?
            .ok_or(ModelingError::NotFound("webhook destination"))?;
        let sender = self.webhooks.sender().map_err(|err| {
            tracing::error!(error = %err, "the webhook sender could not be built");
            ModelingError::Internal("webhook sender")
        })?;
        let secrets = secrets(&destination);
        let signing: Vec<&SigningSecret> = secrets.iter().collect();
        let webhook_id = format!("msg_test_{}", uuid::Uuid::new_v4().simple());
        let outcome = sender
            .send(
                &destination.url,
                &webhook_id,
                Bytes::from_static(TEST_BODY.as_bytes()),
                &signing,
            )
            .await;
        let Classified {
            code,
            http_status,
            error,
            elapsed,
            ..
        } = classify(outcome);
        Ok(TestDelivery {
            webhook_id,
            delivered: code == store::DELIVERED,
            http_status,
            error,
            duration_ms: i64::try_from(elapsed.as_millis()).unwrap_or(i64::MAX),
        })
    }
}
