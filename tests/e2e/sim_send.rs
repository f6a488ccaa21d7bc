//! `touchline sim --send`: the reference data set streamed to the real collection service,
//! its sources registered first; a second send is all duplicates.

use touchline_sim::{SendOptions, SimConfig, TemplateKind};
use touchline_testkit::{TestApp, token};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_generated_data_set_is_sent_once_and_a_resend_is_all_duplicates() -> anyhow::Result<()>
{
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token("sim", &["events:write", "sources:write", "sources:read"]);
    let cfg = SimConfig::new(TemplateKind::Retail, 40, 7);
    let expected = touchline_sim::events(cfg.clone())?.count() as u64;
    let mut opts = SendOptions::new(app.addr().to_string(), token);
    opts.progress_every = None;
    opts.batch = 97;

    let first = touchline_sim::send(cfg.clone(), &opts).await?;
    assert_eq!(first.sent, expected, "every generated event is sent");
    assert_eq!(
        first.accepted + first.duplicates + first.rejected_total(),
        first.sent,
        "every event has exactly one outcome"
    );
    assert!(first.accepted > 0);
    assert_eq!(
        first.sources_registered,
        touchline_sim::wire::sources(&cfg)?.len(),
        "one source per file of the data set"
    );
    // The generator plants SDK retries with repeated message ids.
    assert!(first.duplicates > 0, "planted retries are duplicates");

    let again = touchline_sim::send(cfg, &opts).await?;
    assert_eq!(again.sent, expected);
    assert_eq!(again.accepted, 0, "nothing is stored twice");
    assert_eq!(again.sources_registered, 0, "sources exist already");
    app.stop().await;
    Ok(())
}
