//! Integration tests of the generator: determinism, truth consistency, rates, templates,
//! the event stream and bounded cross-person state.

use std::path::Path;

use touchline_sim::config::{DefectKind, Rates, SimConfig, TemplateKind};
use touchline_sim::generate;
use touchline_sim::verify::verify;

mod chain;

fn run(cfg: SimConfig, dir: &Path) -> touchline_sim::Summary {
    generate(cfg, dir, &mut |_| {}).expect("generation succeeds")
}

fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("readable dir") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).expect("under dir").to_path_buf());
            }
        }
    }
    out.sort();
    out
}

fn assert_clean(dir: &Path) -> touchline_sim::verify::VerifyReport {
    let rep = verify(dir).expect("verification runs");
    assert_eq!(rep.problem_count, 0, "problems: {:#?}", rep.problems);
    assert!(rep.lines > 0);
    rep
}

#[test]
fn same_seed_is_byte_identical_and_another_seed_differs() {
    let (a, b, c) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    run(SimConfig::new(TemplateKind::Retail, 300, 7), a.path());
    run(SimConfig::new(TemplateKind::Retail, 300, 7), b.path());
    run(SimConfig::new(TemplateKind::Retail, 300, 8), c.path());
    let list = files(a.path());
    assert_eq!(list, files(b.path()));
    assert!(list.len() > 20);
    for f in &list {
        let x = std::fs::read(a.path().join(f)).expect("read a");
        let y = std::fs::read(b.path().join(f)).expect("read b");
        assert!(x == y, "{} differs between identical runs", f.display());
    }
    let differing = list
        .iter()
        .filter(|f| std::fs::read(a.path().join(f)).ok() != std::fs::read(c.path().join(f)).ok())
        .count();
    assert!(
        differing > list.len() / 2,
        "only {differing} files differ for another seed"
    );
}

#[test]
fn truth_is_consistent_and_rates_match_at_default_rates() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = SimConfig::new(TemplateKind::Retail, 1500, 11);
    let rates = cfg.rates.clone();
    let summary = run(cfg, dir.path());
    assert!(
        summary.records as f64 / 1500.0 >= 50.0,
        "only {} records",
        summary.records
    );
    assert_clean(dir.path());
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("manifest.json")).expect("manifest"))
            .expect("json");
    for k in DefectKind::ALL {
        let d = &manifest["defects"][k.name()];
        let (e, p) = (
            d["eligible"].as_f64().expect("eligible"),
            d["planted"].as_f64().expect("planted"),
        );
        let r = rates.get(k);
        if e == 0.0 {
            continue;
        }
        let tol = 5.0 * (r * (1.0 - r) / e).sqrt() + 2.0 / e;
        assert!(
            (p / e - r).abs() <= tol,
            "{}: observed {} of {} against configured {r}",
            k.name(),
            p,
            e
        );
    }
    // Kinds that every retail run of this size has opportunities for.
    for k in [
        "event_alias",
        "sdk_retry_duplicate",
        "ad_report_resent",
        "late_arrival",
        "shared_device",
        "dst_gap",
    ] {
        assert!(
            manifest["defects"][k]["eligible"].as_u64().expect("count") > 0,
            "{k} never eligible"
        );
    }
}

#[test]
fn every_kind_is_planted_where_the_truth_says_at_high_rates() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut cfg = SimConfig::new(TemplateKind::Retail, 1500, 5);
    let mut rates = Rates::none();
    for k in DefectKind::ALL {
        rates.set(k, 0.3).expect("valid rate");
    }
    cfg.rates = rates;
    run(cfg, dir.path());
    let rep = assert_clean(dir.path());
    for k in DefectKind::ALL {
        assert!(
            rep.defects_by_kind.get(k.name()).copied().unwrap_or(0) > 0,
            "no {} planted",
            k.name()
        );
    }
}

#[test]
fn clean_run_has_no_defects_and_the_same_journeys() {
    let (clean, messy) = (
        tempfile::tempdir().expect("tmp"),
        tempfile::tempdir().expect("tmp"),
    );
    let mut cfg = SimConfig::new(TemplateKind::Retail, 400, 3);
    run(cfg.clone(), messy.path());
    cfg.rates = Rates::none();
    run(cfg, clean.path());
    assert_clean(clean.path());
    let defects = std::fs::read_to_string(clean.path().join("truth/defects.csv")).expect("defects");
    assert_eq!(defects.lines().count(), 1, "a clean run planted defects");
    // Mess comes from separate streams: the journeys and their conversions do not change.
    let j = |d: &Path| std::fs::read(d.join("truth/journeys.csv")).expect("journeys");
    assert!(
        j(clean.path()) == j(messy.path()),
        "journeys differ between clean and messy runs"
    );
}

#[test]
fn healthcare_template_generates_consistent_data() {
    let dir = tempfile::tempdir().expect("tmp");
    run(
        SimConfig::new(TemplateKind::Healthcare, 600, 21),
        dir.path(),
    );
    assert_clean(dir.path());
    let his =
        std::fs::read_to_string(dir.path().join("his/registrations.csv")).expect("his export");
    assert!(his.lines().count() > 5);
    let booking =
        std::fs::read_to_string(dir.path().join("booking_platform/haodf_appointments.jsonl"))
            .expect("booking log");
    assert!(booking.contains("\"appointment_create\""));
    let sdk = std::fs::read_to_string(dir.path().join("sdk/mini_program.jsonl")).expect("sdk");
    assert!(sdk.contains("\"book_appointment\"") || sdk.contains("\"view_doctor\""));
}

#[test]
fn truth_model_states_contributions_that_sum_to_the_uplift() {
    let dir = tempfile::tempdir().expect("tmp");
    let summary = run(SimConfig::new(TemplateKind::Retail, 500, 9), dir.path());
    let model: serde_json::Value = serde_json::from_slice(
        &std::fs::read(dir.path().join("truth/conversion_model.json")).expect("model"),
    )
    .expect("json");
    let shapley: f64 = model["channels"]
        .as_array()
        .expect("channels")
        .iter()
        .map(|c| c["expected_shapley_conversions"].as_f64().expect("num"))
        .sum();
    let uplift = model["expected_conversions"].as_f64().expect("num")
        - model["baseline_conversions"].as_f64().expect("num");
    assert!(
        (shapley - uplift).abs() < 1e-3,
        "shapley {shapley} vs uplift {uplift}"
    );
    let journeys =
        std::fs::read_to_string(dir.path().join("truth/journeys.csv")).expect("journeys");
    let converted = journeys
        .lines()
        .skip(1)
        .filter(|l| l.split(',').nth(5) == Some("Y"))
        .count() as u64;
    assert_eq!(converted, summary.stats.conversions);
    assert_eq!(model["drawn_conversions"].as_u64(), Some(converted));
}

#[test]
fn event_stream_yields_every_person_record_with_identifiers() {
    let dir = tempfile::tempdir().expect("tmp");
    let cfg = SimConfig::new(TemplateKind::Retail, 200, 4);
    let summary = run(cfg.clone(), dir.path());
    let events: Vec<_> = touchline_sim::events(cfg).expect("stream").collect();
    // Every data line of every file is streamed: person records, then the ad report rows.
    assert_eq!(events.len() as u64, summary.records);
    let reports = events
        .iter()
        .filter(|e| e.event.as_deref() == Some("ad_daily_report"))
        .count() as u64;
    assert!(reports > 0);
    assert_eq!(summary.stats.records + reports, summary.records);
    let pos = events
        .iter()
        .find(|e| e.channel == "pos")
        .expect("a pos order");
    assert_eq!(pos.event.as_deref(), Some("pos_order"));
    assert!(pos.original_timestamp.is_string());
    let sdk_lines = std::fs::read_to_string(dir.path().join("sdk/app.jsonl")).expect("sdk");
    let first_app = events
        .iter()
        .find(|e| e.channel == "app")
        .expect("an app event");
    assert_eq!(
        sdk_lines.lines().next(),
        Some(serde_json::to_string(first_app).expect("json").as_str())
    );
}

#[test]
fn cross_person_state_is_bounded_by_campaigns_and_days() {
    for persons in [100, 1500] {
        let dir = tempfile::tempdir().expect("tmp");
        let cfg = SimConfig::new(TemplateKind::Retail, persons, 2);
        let days = u64::from(cfg.days);
        let summary = run(cfg, dir.path());
        assert!(summary.stats.ad_clicks.len() as u64 <= 5 * (days + 2));
    }
}

#[test]
fn send_to_nothing_fails_clearly_and_bad_rates_are_rejected() {
    let cfg = SimConfig::new(TemplateKind::Retail, 10, 1);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let opts = touchline_sim::SendOptions::new("127.0.0.1:1", "token");
    let err = runtime
        .block_on(touchline_sim::send(cfg, &opts))
        .expect_err("nothing listens on port 1");
    assert!(
        err.to_string().contains("CreateSource"),
        "the failing call is named: {err}"
    );
    let mut rates = Rates::default();
    assert!(rates.apply_override("event_alias=1.5").is_err());
    assert!(rates.apply_override("no_such_kind=0.1").is_err());
    assert!(rates.apply_override("event_alias=0.2").is_ok());
    assert_eq!(rates.get(DefectKind::EventAlias), 0.2);
}

#[test]
fn streamed_events_carry_their_truth() {
    let cfg = SimConfig::new(TemplateKind::Retail, 300, 11);
    let mut stream = touchline_sim::events(cfg).expect("stream");
    let (mut aliases, mut resent, mut total) = (0, 0, 0);
    while let Some(t) = stream.next_with_truth() {
        total += 1;
        if t.event.event.as_deref() == Some("ad_daily_report") {
            assert!(t.person.is_none());
            resent += usize::from(t.defects.contains(&DefectKind::AdReportResent));
            continue;
        }
        assert!(t.person.is_some(), "every person record names its person");
        if t.defects.contains(&DefectKind::EventAlias) {
            let true_name = t
                .true_name
                .as_deref()
                .expect("an alias names its true event");
            assert_ne!(Some(true_name), t.event.event.as_deref());
            aliases += 1;
        } else {
            assert!(t.true_name.is_none());
        }
    }
    assert!(total > 1000 && aliases > 0 && resent > 0);
}

#[test]
fn a_store_ipads_app_sessions_name_the_store_as_what_opened_them() {
    let dir = tempfile::tempdir().expect("tmp");
    let mut cfg = SimConfig::new(TemplateKind::Retail, 600, 13);
    let mut rates = Rates::none();
    rates
        .set(DefectKind::SharedDevice, 0.3)
        .expect("valid rate");
    cfg.rates = rates;
    run(cfg, dir.path());
    let shared = std::fs::read_to_string(dir.path().join("truth/shared_devices.csv"))
        .expect("shared devices");
    let devices: std::collections::HashSet<&str> = shared
        .lines()
        .skip(1)
        .filter_map(|line| line.split(',').next())
        .map(|id| id.trim_matches('"'))
        .collect();
    assert!(!devices.is_empty(), "the truth lists the stores' iPads");
    let app = std::fs::read_to_string(dir.path().join("sdk/app.jsonl")).expect("app log");
    let (mut on_ipad, mut elsewhere_from_store) = (0, 0);
    for line in app.lines() {
        let event: serde_json::Value = serde_json::from_str(line).expect("a JSON line");
        let device = event["context"]["device"]["id"]
            .as_str()
            .unwrap_or_default();
        let opened_by = event["properties"]["utm_source"].as_str();
        if devices.contains(device) {
            on_ipad += 1;
            assert_eq!(
                opened_by,
                Some("pos"),
                "an iPad event without the store: {line}"
            );
        } else if opened_by == Some("pos") {
            elsewhere_from_store += 1;
        }
    }
    assert!(on_ipad > 100, "only {on_ipad} events on the stores' iPads");
    assert_eq!(
        elsewhere_from_store, 0,
        "only a store's own devices tag app sessions with the store"
    );
}
