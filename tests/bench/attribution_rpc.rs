//! Attribution on a path file through the real service: the whole application started on a
//! fresh database, the file sent as the `paths_text` of RunAttributionOnPaths, and the time
//! of each call measured at the client (sending, parsing, the models and the reply).
//!
//! `cargo run --release -p touchline-e2e --bin attribution-rpc -- <paths file> [RUNS]`
//!
//! Prints tab-separated lines, as the comparison script reads them:
//! `result<TAB>model<TAB>channel<TAB>conversions<TAB>value` (from the first run) and
//! `timing<TAB>step<TAB>milliseconds` (one per run), for Markov of order 1 and 3 and for the
//! heuristics (first touch, last touch, linear) in one call.
#![allow(clippy::print_stdout, reason = "a benchmark prints its figures")]

use std::time::Instant;

use anyhow::Context as _;
use touchline_proto::modeling::v1::modeling_service_client::ModelingServiceClient;
use touchline_proto::modeling::v1::{
    AttributionModel, AttributionModelType as T, RunAttributionOnPathsRequest,
    run_attribution_on_paths_request::PathsInput,
};
use touchline_testkit::{TestApp, token};

fn model(kind: T, order: i32) -> AttributionModel {
    AttributionModel {
        r#type: kind.into(),
        markov_order: order,
        ..AttributionModel::default()
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let file = args
        .next()
        .context("usage: attribution-rpc <paths file> [RUNS]")?;
    let runs: usize = args.next().map(|r| r.parse()).transpose()?.unwrap_or(3);
    let text = std::fs::read_to_string(&file).with_context(|| format!("reading {file}"))?;
    let app = TestApp::spawn().await?;
    let mut modeling = ModelingServiceClient::new(app.channel(&token("bench", &["models:read"]))?)
        .max_encoding_message_size(64 << 20)
        .max_decoding_message_size(64 << 20);
    let steps = [
        ("markov_1", vec![model(T::Markov, 1)]),
        ("markov_3", vec![model(T::Markov, 3)]),
        (
            "heuristics",
            vec![
                model(T::FirstTouch, 0),
                model(T::LastTouch, 0),
                model(T::Linear, 0),
            ],
        ),
    ];
    for run in 0..runs {
        for (step, models) in &steps {
            let request = RunAttributionOnPathsRequest {
                paths_input: Some(PathsInput::PathsText(text.clone())),
                models: models.clone(),
                ..RunAttributionOnPathsRequest::default()
            };
            let start = Instant::now();
            let reply = modeling
                .run_attribution_on_paths(request)
                .await?
                .into_inner();
            let ms = start.elapsed().as_secs_f64() * 1_000.0;
            println!("timing\t{step}_rpc\t{ms}");
            if run > 0 {
                continue;
            }
            for result in &reply.results {
                let name = match (result.model.as_ref().map(|m| m.r#type), *step) {
                    (Some(t), _) if t == i32::from(T::FirstTouch) => "first_touch",
                    (Some(t), _) if t == i32::from(T::LastTouch) => "last_touch",
                    (Some(t), _) if t == i32::from(T::Linear) => "linear",
                    (_, step) => step,
                };
                for channel in &result.channels {
                    println!(
                        "result\t{name}\t{}\t{}\t{}",
                        channel.channel, channel.conversions, channel.value
                    );
                }
            }
        }
    }
    Ok(())
}
