//! The journey analytics as the modeling service runs them, on a store of the size the
//! product targets: 10 M events of 1 M persons over 180 days (by default), written into a
//! fresh PostgreSQL database, then
//!
//! 1. the rebuild: the tenant's projection built from one snapshot of `modeling.events`
//!    (what a restarted service does on its first query), its time, its memory per event
//!    and the process's resident set;
//! 2. the queries through the service layer, each catching up with the store first: a
//!    4-step ordered funnel with a 14-day window broken down by channel, weekly retention
//!    of 12 cohorts, a 26-week lifecycle, paths of 5 steps with the 50 heaviest edges,
//!    attribution of `submit_order` over 180 days with every model in one call (first, last,
//!    linear, position based, time decay, Markov of orders 1–3, both Shapley games), then
//!    the same with journeys that end after 2 days without a touch — medians of several
//!    runs; with `--person-less-orders P`, P % of the orders are stored without a person
//!    and attribution runs a third time, crediting them to the channel that recorded them;
//! 3. freshness: a writer commits 200 events every 100 ms (2,000 events a second, merges of
//!    persons among them) while a reader runs the funnel back to back; for each committed
//!    batch, the time until a funnel that reflects it has answered (p50, p99).
//!
//! ```text
//! cargo run --release -p touchline-modeling --example journeys_bench -- \
//!     [--persons 1000000] [--events-per-person 10] [--runs 7] [--fresh-seconds 20] \
//!     [--person-less-orders 0]
//! ```
//!
//! It needs the local PostgreSQL (`make services`), and prints each figure next to the
//! target it is held against.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use chrono::{TimeZone as _, Utc};
use prost::Message as _;
use touchline_analytics::calendar::Interval;
use touchline_db::testing::TestDatabase;
use touchline_modeling::journeys::Journeys;
use touchline_modeling::journeys::attribution::query::{
    AttributionQuery, GameChoice, ModelRequest, ModelType, UnidentifiedChoice,
};
use touchline_modeling::journeys::lifecycle::{LifecycleOptions, LifecycleQuery};
use touchline_modeling::journeys::paths::PathsQuery;
use touchline_modeling::journeys::query::{
    BreakdownAttribution, FunnelBreakdown, FunnelOrder, FunnelQuery, FunnelStep, Matcher, Scope,
};
use touchline_modeling::journeys::retention::RetentionQuery;
use touchline_modeling::service::Modeling;
use touchline_modeling::store::{NewStoredEvent, commit_batch};
use touchline_proto::governance::v1::CleanEvent;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const TENANT: &str = "bench";
const DAY_MS: i64 = 86_400_000;
/// 2026-01-01T00:00:00Z.
const EPOCH_MS: i64 = 1_767_225_600_000;
const CHANNELS: [&str; 7] = [
    "app",
    "mini_program",
    "web",
    "pos",
    "marketplace",
    "ads",
    "wechat_oa",
];
/// Event names; the first four are the funnel's steps. Weights in percent follow the
/// analytics crate's funnel_bench.
const NAMES: [(&str, i64); 8] = [
    ("view_item", 25),
    ("add_to_cart", 20),
    ("submit_order", 10),
    ("pay_order", 5),
    ("page_view", 10),
    ("search", 10),
    ("login", 10),
    ("service_ticket", 10),
];
/// Rows written per INSERT statement.
const WRITE_CHUNK: i64 = 500_000;

struct Options {
    persons: i64,
    events_per_person: i64,
    runs: usize,
    fresh_seconds: u64,
    /// Percent of the orders stored without a person.
    person_less_orders: i64,
}

fn options() -> anyhow::Result<Options> {
    let mut options = Options {
        persons: 1_000_000,
        events_per_person: 10,
        runs: 7,
        fresh_seconds: 20,
        person_less_orders: 0,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let value = pair.get(1).context("every flag takes a value")?;
        match pair[0].as_str() {
            "--persons" => options.persons = value.parse()?,
            "--events-per-person" => options.events_per_person = value.parse()?,
            "--runs" => options.runs = value.parse()?,
            "--fresh-seconds" => options.fresh_seconds = value.parse()?,
            "--person-less-orders" => options.person_less_orders = value.parse()?,
            other => anyhow::bail!("unknown flag {other}"),
        }
    }
    Ok(options)
}

/// The payload of an event on `channel`: what the projection decodes.
fn payload(channel: &str) -> Vec<u8> {
    CleanEvent {
        channel: channel.to_owned(),
        touchpoint: format!("{channel}_home"),
        source: format!("{channel}_sdk"),
        touchpoint_type: 1,
        owning_department: 1,
        ..CleanEvent::default()
    }
    .encode_to_vec()
}

fn resident_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|kb| kb.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Writes the events server-side: person `s / events_per_person`, each person's events a
/// few hours apart from a day of the first 160, names and channels by hashes of `s`.
async fn write_events(pool: &sqlx::PgPool, options: &Options) -> anyhow::Result<i64> {
    let total = options.persons * options.events_per_person;
    let names: Vec<&str> = NAMES.iter().map(|(n, _)| *n).collect();
    let mut thresholds = Vec::new();
    let mut sum = 0;
    for (_, weight) in NAMES {
        sum += weight;
        thresholds.push(sum);
    }
    let payloads: Vec<Vec<u8>> = CHANNELS.iter().map(|c| payload(c)).collect();
    // A bulk load, as a restore would do it: the counters' trigger off (CountEvents is not
    // measured here) and the secondary indexes built once at the end.
    for statement in [
        "ALTER TABLE modeling.events DISABLE TRIGGER events_counted_on_insert",
        "ALTER TABLE modeling.events DROP CONSTRAINT events_tenant_id_message_id_key",
        "DROP INDEX modeling.events_person",
        "DROP INDEX modeling.events_revision",
    ] {
        sqlx::query(statement)
            .execute(pool)
            .await
            .context(statement)?;
    }
    let mut from = 1;
    while from <= total {
        let to = (from + WRITE_CHUNK - 1).min(total);
        sqlx::query(
            "INSERT INTO modeling.events
               (tenant_id, sequence, message_id, person_id, event_name, channel, event_time, payload)
             SELECT $1, s, 'm' || s, md5('p' || (s / $4))::uuid,
                    ($5::text[])[(SELECT 1 + count(*) FROM unnest($6::bigint[]) t WHERE t <= (hashint8(s)::bigint & 2147483647) % 100)],
                    ($7::text[])[1 + (hashint8(s * 31)::bigint & 2147483647) % 7],
                    to_timestamp(($8 + ((hashint8(s / $4)::bigint & 2147483647) % 160) * 86400000
                                 + (s % $4) * (3600000 + (hashint8(s * 7)::bigint & 2147483647) % 14400000)) / 1000.0),
                    ($9::bytea[])[1 + (hashint8(s * 31)::bigint & 2147483647) % 7]
               FROM generate_series($2::bigint, $3::bigint) s",
        )
        .bind(TENANT)
        .bind(from)
        .bind(to)
        .bind(options.events_per_person)
        .bind(&names)
        .bind(&thresholds)
        .bind(CHANNELS.as_slice())
        .bind(EPOCH_MS)
        .bind(&payloads)
        .execute(pool)
        .await
        .context("writing events")?;
        from = to + 1;
        eprint!("\rwritten {to} of {total} events");
    }
    eprintln!();
    for statement in [
        "ALTER TABLE modeling.events ADD CONSTRAINT events_tenant_id_message_id_key UNIQUE (tenant_id, message_id)",
        "CREATE INDEX events_person ON modeling.events (tenant_id, person_id, event_time)",
        "CREATE INDEX events_revision ON modeling.events (tenant_id, revision)",
        "ALTER TABLE modeling.events ENABLE TRIGGER events_counted_on_insert",
    ] {
        sqlx::query(statement)
            .execute(pool)
            .await
            .context(statement)?;
    }
    Ok(total)
}

fn step(name: &str) -> FunnelStep {
    FunnelStep {
        label: String::new(),
        event: Some(Matcher {
            event_name: name.to_owned(),
            filters: Vec::new(),
        }),
    }
}

fn whole_range() -> Scope {
    Scope {
        start_ms: Some(EPOCH_MS),
        end_ms: Some(EPOCH_MS + 200 * DAY_MS),
        ..Scope::default()
    }
}

fn funnel() -> FunnelQuery {
    FunnelQuery {
        steps: NAMES.iter().take(4).map(|(n, _)| step(n)).collect(),
        window_ms: Some(14 * DAY_MS),
        order: FunnelOrder::Ordered,
        exclusions: Vec::new(),
        breakdown: Some(FunnelBreakdown {
            field: "channel".to_owned(),
            limit: 10,
            attribution: BreakdownAttribution::FirstTouch,
        }),
        scope: whole_range(),
    }
}

/// The median and the last result of `runs` calls.
async fn median<T, F, Fut>(runs: usize, mut call: F) -> anyhow::Result<(Duration, T)>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut times = Vec::new();
    let mut last = None;
    for _ in 0..runs.max(1) {
        let started = Instant::now();
        last = Some(call().await?);
        times.push(started.elapsed());
    }
    times.sort();
    let last = last.context("at least one run")?;
    Ok((times[times.len() / 2], last))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1_000.0
}

async fn time_queries(modeling: &Modeling, runs: usize, credit: bool) -> anyhow::Result<()> {
    let (funnel_time, figures) = median(runs, || async {
        Ok(modeling.run_funnel(TENANT, &funnel()).await?)
    })
    .await?;
    let counts: Vec<u64> = figures.steps.iter().map(|s| s.summary.count).collect();
    println!(
        "funnel, 4 steps, 14 days, by channel   p50 {:>8.1} ms   target <= 150 ms    counts {counts:?}",
        ms(funnel_time)
    );
    let retention = RetentionQuery {
        start: Some(Matcher::default()),
        returning: None,
        cohort_type: touchline_analytics::retention::CohortType::FirstTime,
        return_mode: touchline_analytics::retention::ReturnMode::On,
        interval: Some(Interval::Week),
        periods: 12,
        breakdown: None,
        scope: Scope {
            start_ms: Some(EPOCH_MS),
            end_ms: Some(EPOCH_MS + 12 * 7 * DAY_MS),
            ..Scope::default()
        },
    };
    let (retention_time, _) = median(runs, || async {
        Ok(modeling.run_retention(TENANT, &retention).await?)
    })
    .await?;
    println!(
        "retention, weekly, 12 cohorts          p50 {:>8.1} ms   target <= 300 ms",
        ms(retention_time)
    );
    let lifecycle = LifecycleQuery {
        options: LifecycleOptions {
            interval: Some(Interval::Week),
            ..LifecycleOptions::default()
        },
        scope: Scope {
            start_ms: Some(EPOCH_MS),
            end_ms: Some(EPOCH_MS + 26 * 7 * DAY_MS),
            ..Scope::default()
        },
    };
    let (lifecycle_time, _) = median(runs, || async {
        Ok(modeling.run_lifecycle(TENANT, &lifecycle).await?)
    })
    .await?;
    println!(
        "lifecycle, 26 weeks                    p50 {:>8.1} ms   target <= 300 ms",
        ms(lifecycle_time)
    );
    let paths = PathsQuery {
        max_steps: 5,
        max_edges: 50,
        scope: whole_range(),
        ..PathsQuery::default()
    };
    let (paths_time, _) = median(runs, || async {
        Ok(modeling.run_paths(TENANT, &paths).await?)
    })
    .await?;
    println!(
        "paths, 5 steps, 50 edges               p50 {:>8.1} ms   target <= 500 ms",
        ms(paths_time)
    );
    time_attribution(modeling, runs, credit).await
}

/// Attribution with every model, with and without a journey gap, and (`credit`) with the
/// orders stored without a person credited to the channel that recorded them.
async fn time_attribution(modeling: &Modeling, runs: usize, credit: bool) -> anyhow::Result<()> {
    let mut readings = vec![
        (
            "attribution, 10 models, 165 days      ",
            None,
            UnidentifiedChoice::Apart,
        ),
        (
            "  the same, journeys end after 2 days ",
            Some(2 * DAY_MS),
            UnidentifiedChoice::Apart,
        ),
    ];
    if credit {
        readings.push((
            "  the same, no gap, sales without a person credited",
            None,
            UnidentifiedChoice::RecordingChannel,
        ));
    }
    for (label, gap_ms, unidentified) in readings {
        let query = AttributionQuery {
            journey_gap_ms: gap_ms,
            unidentified,
            ..attribution()
        };
        let (attribution_time, attribution) = median(runs, || async {
            Ok(modeling.run_attribution(TENANT, &query).await?)
        })
        .await?;
        let summary = attribution.figures.summary;
        println!(
            "{label} p50 {:>8.1} ms   target <= 2000 ms   {:.0} conversions, {:.0} non-converting, {} paths, {:.0} without a person",
            ms(attribution_time),
            summary.conversions,
            summary.non_converting,
            summary.paths,
            attribution.unidentified.conversions
        );
    }
    Ok(())
}

/// Attribution of `submit_order` over the first 165 days with every model.
fn attribution() -> AttributionQuery {
    let model = |kind, markov_order| ModelRequest {
        kind,
        markov_order,
        ..ModelRequest::default()
    };
    let mut models = vec![
        model(ModelType::FirstTouch, 0),
        model(ModelType::LastTouch, 0),
        model(ModelType::Linear, 0),
        model(ModelType::PositionBased, 0),
        model(ModelType::TimeDecay, 0),
        model(ModelType::Markov, 1),
        model(ModelType::Markov, 2),
        model(ModelType::Markov, 3),
        model(ModelType::Shapley, 0),
    ];
    models.push(ModelRequest {
        shapley_game: GameChoice::Game(
            touchline_analytics::attribution::ShapleyGame::ConversionRate,
        ),
        ..model(ModelType::Shapley, 0)
    });
    AttributionQuery {
        conversion: Some(Matcher {
            event_name: "submit_order".to_owned(),
            filters: Vec::new(),
        }),
        models,
        // Events run to about day 161: ending the range at day 165 leaves the touches after
        // each person's last order as non-converting journeys.
        scope: Scope {
            start_ms: Some(EPOCH_MS),
            end_ms: Some(EPOCH_MS + 165 * DAY_MS),
            ..Scope::default()
        },
        ..AttributionQuery::default()
    }
}

/// Commits 200 events every 100 ms for `seconds` while funnels run back to back; returns
/// each batch's time to a funnel answer that reflects it.
async fn freshness(
    pool: &sqlx::PgPool,
    modeling: &Modeling,
    seconds: u64,
    first_sequence: i64,
) -> anyhow::Result<Vec<Duration>> {
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel::<Instant>();
    let writer_pool = pool.clone();
    let writer = tokio::spawn(async move {
        let mut sequence = first_sequence;
        let mut tick = tokio::time::interval(Duration::from_millis(100));
        let ends = Instant::now() + Duration::from_secs(seconds);
        while Instant::now() < ends {
            tick.tick().await;
            let batch: Vec<NewStoredEvent> = (0..200)
                .map(|i| {
                    sequence += 1;
                    let channel = CHANNELS[(sequence % 7) as usize];
                    NewStoredEvent {
                        sequence,
                        message_id: format!("live-{sequence}"),
                        person_id: Some(uuid::Uuid::from_u128(u128::from(i as u32 % 50) + 1)),
                        event_name: NAMES[(sequence % 4) as usize].0.to_owned(),
                        channel: channel.to_owned(),
                        event_time: Utc
                            .timestamp_millis_opt(EPOCH_MS + 100 * DAY_MS + sequence)
                            .single()
                            .unwrap_or_default(),
                        payload: payload(channel),
                        retraction: false,
                    }
                })
                .collect();
            commit_batch(&writer_pool, TENANT, &batch, "bench", sequence).await?;
            let _ = sender.send(Instant::now());
        }
        anyhow::Ok(())
    });
    let mut committed: Vec<Instant> = Vec::new();
    let mut answers: Vec<(Instant, Instant)> = Vec::new();
    while !writer.is_finished() {
        let started = Instant::now();
        while let Ok(at) = receiver.try_recv() {
            committed.push(at);
        }
        modeling.run_funnel(TENANT, &funnel()).await?;
        answers.push((started, Instant::now()));
    }
    writer.await??;
    while let Ok(at) = receiver.try_recv() {
        committed.push(at);
    }
    // A batch is reflected by the first funnel that started after its commit.
    let mut lags = Vec::new();
    for at in committed {
        if let Some((_, answered)) = answers.iter().find(|(started, _)| *started >= at) {
            lags.push(answered.duration_since(at));
        }
    }
    lags.sort();
    Ok(lags)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let options = options()?;
    let db = TestDatabase::create().await?;
    let pool = db
        .migrated_pool(touchline_modeling::SCHEMA, &touchline_modeling::MIGRATOR)
        .await?;
    let started = Instant::now();
    let total = write_events(&pool, &options).await?;
    println!(
        "{total} events of {} persons written to PostgreSQL in {:.1} s",
        options.persons,
        started.elapsed().as_secs_f64()
    );
    if options.person_less_orders > 0 {
        // As if the tills had recorded these sales alone: no identifier, no person.
        let taken = sqlx::query(
            "UPDATE modeling.events SET person_id = NULL
              WHERE tenant_id = $1 AND event_name = 'submit_order'
                AND (hashint8(sequence * 13)::bigint & 2147483647) % 100 < $2",
        )
        .bind(TENANT)
        .bind(options.person_less_orders)
        .execute(&pool)
        .await
        .context("storing orders without a person")?
        .rows_affected();
        println!("{taken} orders stored without a person");
    }
    sqlx::query("VACUUM ANALYZE modeling.events")
        .execute(&pool)
        .await?;

    let before = resident_mib();
    let journeys = Journeys::new(pool.clone());
    let started = Instant::now();
    let view = journeys.current(TENANT).await?;
    let rebuild = started.elapsed();
    let memory = view.projection.memory();
    let events = view.projection.events();
    let keys_per_event = view.persons.heap_bytes() as f64 / events.max(1) as f64;
    println!(
        "rebuild from PostgreSQL                     {:>8.1} s    target <= 30 s (10 M events)",
        rebuild.as_secs_f64()
    );
    println!(
        "projection                                  {:>8.1} B/event target <= 24; person keys {:.1} B/event more; resident set grew {:.0} MiB",
        memory.bytes_per_event(),
        keys_per_event,
        resident_mib() - before
    );
    drop(view);
    drop(journeys);

    let modeling = Modeling::new(pool.clone());
    time_queries(&modeling, options.runs, options.person_less_orders > 0).await?;
    let lags = freshness(&pool, &modeling, options.fresh_seconds, total + 1).await?;
    if !lags.is_empty() {
        let at = |q: f64| lags[((lags.len() - 1) as f64 * q) as usize];
        println!(
            "freshness at 2,000 events/s ({} batches)  p50 {:>8.1} ms   p99 {:.1} ms   target p99 <= 1,000 ms",
            lags.len(),
            ms(at(0.5)),
            ms(at(0.99))
        );
    }
    pool.close().await;
    Ok(())
}
