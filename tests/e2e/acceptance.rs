//! Issue-level acceptance on a small run of the reference data set: planted defects end in
//! quarantine or dedup with the right reason, untouched records arrive whole at their true
//! instants, cross-source duplicate orders are recognised without false merges, and the
//! quality report accounts for every record. The `medium` run is `governance-acceptance`.

use touchline_testkit::TestApp;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reference_data_set_comes_through_as_its_truth_says() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let report = touchline_e2e::acceptance::run(&app, "truth", 150, 3, true).await;
    app.stop().await;
    let report = report?;
    println!("{report}");

    let (planted, handled) = report.defects();
    assert!(planted > 100, "the run plants defects: {planted}");
    assert!(
        handled * 1_000 >= planted * 999,
        "at least 99.9 % of planted defects handled right:\n{report}"
    );
    assert_eq!(
        report.clean_wrong, 0,
        "no clean record lost or altered:\n{report}"
    );
    assert_eq!(
        report.instants_wrong, 0,
        "every instant is the true one:\n{report}"
    );
    assert_eq!(
        report.false_merges, 0,
        "no distinct record deduplicated:\n{report}"
    );
    let (planted_dups, recognised) = report.cross_source;
    assert!(planted_dups > 0 && recognised * 100 >= planted_dups * 99);
    let identity = report
        .identity
        .ok_or_else(|| anyhow::anyhow!("no identity scores"))?;
    // Recall is judged against what the data links at all: a visitor who never logs in
    // shares no identifier with the rest of their person, and no resolver can join them.
    let ceiling = report.linkable_recall.unwrap_or(1.0);
    assert!(
        identity.precision >= 0.995 && identity.recall >= 0.98 * ceiling,
        "identity pairwise precision ≥ 0.995 and recall ≥ 98 % of the linkable ceiling:\n{report}"
    );
    let quality = report.quality_total.as_ref();
    let quality = quality.ok_or_else(|| anyhow::anyhow!("no quality report"))?;
    assert_eq!(
        quality.received,
        quality.clean + quality.quarantined + quality.duplicates,
        "received = clean + quarantined + duplicates"
    );
    assert_eq!(
        u64::try_from(quality.received)?,
        report.sent,
        "the report counts every record sent"
    );
    Ok(())
}
