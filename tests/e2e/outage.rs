//! While PostgreSQL does not answer, readiness says so and calls fail at once with UNAVAILABLE
//! and a retry hint (instead of each waiting out the pool's acquire timeout); both recover by
//! themselves when it answers again. The outage is made by a proxy between the application
//! and the database, which the test cuts and restores.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use touchline_proto::modeling::v1::CountEventsRequest;
use touchline_proto::modeling::v1::modeling_service_client::ModelingServiceClient;
use touchline_testkit::{TestApp, TestDatabase, eventually, token};

/// A TCP proxy to PostgreSQL that can be cut: while cut, it closes every connection it
/// carries and every new one.
struct Proxy {
    port: u16,
    cut: Arc<AtomicBool>,
}

impl Proxy {
    async fn start(upstream: String) -> anyhow::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let port = listener.local_addr()?.port();
        let cut = Arc::new(AtomicBool::new(false));
        let flag = cut.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if flag.load(Ordering::SeqCst) {
                    continue;
                }
                let flag = flag.clone();
                let upstream = upstream.clone();
                tokio::spawn(async move {
                    if let Ok(server) = TcpStream::connect(upstream).await {
                        pipe(client, server, flag).await;
                    }
                });
            }
        });
        Ok(Self { port, cut })
    }
}

/// Copies both ways until either side closes or the proxy is cut.
async fn pipe(mut client: TcpStream, mut server: TcpStream, cut: Arc<AtomicBool>) {
    let copy = tokio::io::copy_bidirectional(&mut client, &mut server);
    let watch = async {
        while !cut.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::select! {
        _ = copy => {}
        () = watch => {}
    }
}

async fn health(app: &TestApp) -> anyhow::Result<i32> {
    let channel = touchline_runtime::client::lazy_channel(&format!("http://{}", app.addr()))?;
    Ok(HealthClient::new(channel)
        .check(HealthCheckRequest::default())
        .await?
        .into_inner()
        .status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_that_stops_answering_fails_calls_fast_and_recovers() -> anyhow::Result<()> {
    crate::init();
    let db = TestDatabase::create().await?;
    let direct: sqlx::postgres::PgConnectOptions = db.url.parse()?;
    let proxy = Proxy::start(format!("127.0.0.1:{}", direct.get_port())).await?;
    let via_proxy = db.url.replacen(
        &format!(":{}/", direct.get_port()),
        &format!(":{}/", proxy.port),
        1,
    );
    let app = TestApp::spawn_with(db, |config| {
        config.database.url = via_proxy.into();
    })
    .await?;
    let reader = token("acme", &["models:read"]);
    let mut modeling = ModelingServiceClient::new(app.channel(&reader)?);
    modeling.count_events(CountEventsRequest::default()).await?;
    assert_eq!(health(&app).await?, ServingStatus::Serving as i32);

    proxy.cut.store(true, Ordering::SeqCst);
    eventually(Duration::from_secs(10), || async {
        Ok((health(&app).await? == ServingStatus::NotServing as i32).then_some(()))
    })
    .await?;
    let status = modeling
        .count_events(CountEventsRequest::default())
        .await
        .expect_err("the database does not answer");
    assert_eq!(status.code(), tonic::Code::Unavailable);
    let details = tonic_types::StatusExt::get_error_details(&status);
    assert!(details.retry_info().is_some(), "a retry hint: {status:?}");

    proxy.cut.store(false, Ordering::SeqCst);
    eventually(Duration::from_secs(15), || async {
        Ok((health(&app).await? == ServingStatus::Serving as i32).then_some(()))
    })
    .await?;
    eventually(Duration::from_secs(15), || {
        let mut modeling = modeling.clone();
        async move {
            Ok(modeling
                .count_events(CountEventsRequest::default())
                .await
                .ok()
                .map(|_| ()))
        }
    })
    .await?;
    app.stop().await;
    Ok(())
}
