//! Oversized metadata is refused per call, never by dropping the caller's connection: a token
//! of a mebibyte answers UNAUTHENTICATED, a large custom header RESOURCE_EXHAUSTED, and the
//! same connection carries the next call.

use touchline_e2e::sample_event;
use touchline_proto::collection::v1::IngestEventsRequest;
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_runtime::client::lazy_channel;
use touchline_testkit::{TestApp, token};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_metadata_fails_the_call_not_the_connection() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    // One connection for every call below.
    let channel = lazy_channel(&format!("http://{}", app.addr()))?;
    let good = token("acme", &["events:write"]);
    let call = |auth: String, extra: Option<String>| {
        let channel = channel.clone();
        async move {
            let mut request = tonic::Request::new(IngestEventsRequest {
                events: vec![sample_event("m-1", 1, "view", 1_795_507_200_000)],
            });
            request
                .metadata_mut()
                .insert("authorization", auth.parse().map_err(anyhow::Error::from)?);
            if let Some(extra) = extra {
                request
                    .metadata_mut()
                    .insert("x-note", extra.parse().map_err(anyhow::Error::from)?);
            }
            Ok::<_, anyhow::Error>(
                CollectionServiceClient::new(channel)
                    .ingest_events(request)
                    .await
                    .map(|_| ()),
            )
        }
    };
    let huge_token = format!("Bearer {}", "a".repeat(1 << 20));
    let status = call(huge_token, None).await?.expect_err("a 1 MiB token");
    assert_eq!(status.code(), tonic::Code::Unauthenticated, "{status:?}");
    let status = call(format!("Bearer {good}"), Some("n".repeat(44_000)))
        .await?
        .expect_err("a 44 KB header");
    assert_eq!(status.code(), tonic::Code::ResourceExhausted, "{status:?}");
    call(format!("Bearer {good}"), None)
        .await?
        .map_err(|status| anyhow::anyhow!("the connection still serves: {status:?}"))?;
    app.stop().await;
    Ok(())
}
