//! Random and mutated IngestEvents bodies against the real server: raw bytes
//! that may not decode at all, and decodable batches whose events were
//! mutated field by field. The server must answer every call with a status
//! (never crash or hang), judge decodable batches event by event so one bad
//! event never fails the others, and still serve a normal call afterwards.
//! The run is seeded, bounded in count, and prints its size and duration.

use std::time::{Duration, Instant};

use touchline_e2e::sample_event;
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_proto::collection::v1::{IngestEventsRequest, IngestEventsResponse, IngestStatus};
use touchline_proto::common::v1::Event;
use touchline_proto::prost::Message as _;
use touchline_proto::prost::bytes::BufMut as _;
use touchline_proto::tonic;
use touchline_proto::tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use touchline_testkit::{TestApp, token};

/// Calls of each kind; bounded so the run stops by itself.
const RAW_CASES: usize = 400;
const EVENT_BATCHES: usize = 60;
const SEED: u64 = 0x5EED_C011_EC71_0001;

/// SplitMix64: a tiny seeded generator, so a failing case can be replayed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n.max(1) as u64).unwrap_or(0)
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

/// Sends the request body as given and decodes the usual response.
#[derive(Debug, Clone, Default)]
struct RawCodec;

#[derive(Debug)]
struct RawEncoder;

#[derive(Debug)]
struct ResponseDecoder;

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for ResponseDecoder {
    type Item = IngestEventsResponse;
    type Error = tonic::Status;

    fn decode(
        &mut self,
        src: &mut DecodeBuf<'_>,
    ) -> Result<Option<IngestEventsResponse>, tonic::Status> {
        IngestEventsResponse::decode(src)
            .map(Some)
            .map_err(|err| tonic::Status::internal(format!("bad response: {err}")))
    }
}

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = IngestEventsResponse;
    type Encoder = RawEncoder;
    type Decoder = ResponseDecoder;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> ResponseDecoder {
        ResponseDecoder
    }
}

fn valid_batch(rng: &mut Rng, case: usize) -> IngestEventsRequest {
    let n = 1 + rng.below(8);
    IngestEventsRequest {
        events: (0..n)
            .map(|i| {
                sample_event(
                    &format!("raw-{case}-{i}"),
                    rng.next() % 100,
                    "view",
                    1_795_507_200_000,
                )
            })
            .collect(),
    }
}

/// Random bytes, or a valid body with bytes flipped, inserted, removed or
/// cut off.
fn raw_body(rng: &mut Rng, case: usize) -> Vec<u8> {
    if case.is_multiple_of(4) {
        let len = rng.below(300);
        return rng.bytes(len);
    }
    let mut body = valid_batch(rng, case).encode_to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(body.len());
        match rng.below(4) {
            0 if at < body.len() => body[at] ^= 1 << rng.below(8),
            1 => body.insert(at, rng.next() as u8),
            2 if at < body.len() => {
                body.remove(at);
            }
            _ => body.truncate(at),
        }
    }
    body
}

/// An event with a few fields replaced by awkward values.
fn mutated_event(rng: &mut Rng, id: String) -> Event {
    let mut event = sample_event(&id, rng.next() % 100, "view", 1_795_507_200_000);
    let awkward = |rng: &mut Rng| -> String {
        match rng.below(6) {
            0 => String::new(),
            1 => "a\0b".to_owned(),
            2 => "x".repeat(300),
            3 => " \t".to_owned(),
            4 => "é中\u{7}".to_owned(),
            _ => String::from_utf8_lossy(&rng.bytes(12)).into_owned(),
        }
    };
    for _ in 0..rng.below(3) {
        match rng.below(7) {
            0 => event.message_id = awkward(rng),
            1 => event.event = awkward(rng),
            2 => event.source = awkward(rng),
            3 => event.channel = awkward(rng),
            4 => event.original_timestamp = awkward(rng),
            5 => event.r#type = i32::try_from(rng.below(10)).unwrap_or(0) - 2,
            _ => event.anonymous_id = awkward(rng),
        }
    }
    event
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_and_mutated_bodies_never_crash_the_server() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let writer = token("fuzz", &["events:write"]);
    let started = Instant::now();
    let mut rng = Rng(SEED);
    let mut raw = tonic::client::Grpc::new(app.channel(&writer)?);
    let path = tonic::codegen::http::uri::PathAndQuery::from_static(
        "/touchline.collection.v1.CollectionService/IngestEvents",
    );
    let (mut sent_bytes, mut refused, mut answered) = (0usize, 0usize, 0usize);
    for case in 0..RAW_CASES {
        let body = raw_body(&mut rng, case);
        sent_bytes += body.len();
        let local = IngestEventsRequest::decode(body.as_slice());
        raw.ready().await?;
        let call = raw.unary(tonic::Request::new(body), path.clone(), RawCodec);
        let answer = tokio::time::timeout(Duration::from_secs(10), call).await?;
        match (local, answer) {
            (Ok(request), Ok(response)) => {
                answered += 1;
                let response = response.into_inner();
                assert_eq!(
                    response.results.len(),
                    request.events.len(),
                    "case {case}: one result per event"
                );
                let total =
                    response.accepted_count + response.duplicate_count + response.rejected_count;
                assert_eq!(usize::try_from(total)?, request.events.len(), "case {case}");
            }
            (Ok(request), Err(status)) => {
                // Only a batch-level rule may refuse a decodable body.
                assert!(
                    request.events.is_empty() && status.code() == tonic::Code::InvalidArgument,
                    "case {case}: {status:?} for {} events",
                    request.events.len()
                );
                refused += 1;
            }
            (Err(_), Ok(response)) => {
                panic!("case {case}: an undecodable body was answered {response:?}")
            }
            (Err(_), Err(status)) => {
                // tonic's protobuf codec reports a body it cannot parse as
                // INTERNAL (the gRPC convention for parse errors); either
                // way the call is refused whole and nothing is stored.
                assert!(
                    matches!(
                        status.code(),
                        tonic::Code::InvalidArgument | tonic::Code::Internal
                    ),
                    "case {case}: {status:?}"
                );
                refused += 1;
            }
        }
    }

    // Decodable batches of mutated events: judged one event at a time.
    let mut client = CollectionServiceClient::new(app.channel(&writer)?);
    let mut events_sent = 0usize;
    for batch in 0..EVENT_BATCHES {
        let n = 2 + rng.below(30);
        let mut events: Vec<Event> = (0..n)
            .map(|i| mutated_event(&mut rng, format!("ev-{batch}-{i}")))
            .collect();
        // One untouched event in every batch must be stored whatever its
        // neighbours hold.
        let anchor = rng.below(n + 1);
        let anchor_id = format!("anchor-{batch}");
        events.insert(
            anchor,
            sample_event(&anchor_id, 7, "view", 1_795_507_200_000),
        );
        events_sent += events.len();
        sent_bytes += events.iter().map(|e| e.encoded_len()).sum::<usize>();
        let response = client
            .ingest_events(IngestEventsRequest {
                events: events.clone(),
            })
            .await?
            .into_inner();
        assert_eq!(response.results.len(), events.len(), "batch {batch}");
        let result = &response.results[anchor];
        assert_eq!(result.message_id, anchor_id);
        assert_eq!(
            result.status(),
            IngestStatus::Accepted,
            "batch {batch}: the good event is stored beside bad ones"
        );
        for (event, result) in events.iter().zip(&response.results) {
            if result.status() == IngestStatus::Rejected {
                assert!(
                    !result.violations.is_empty(),
                    "batch {batch}: a rejection names its field"
                );
            }
            if event.message_id.trim().is_empty() {
                assert_eq!(result.status(), IngestStatus::Rejected);
            }
        }
    }

    // The server still serves a normal call.
    let response = client
        .ingest_events(IngestEventsRequest {
            events: vec![sample_event("after-fuzz", 1, "view", 1_795_507_200_000)],
        })
        .await?
        .into_inner();
    assert_eq!(response.accepted_count, 1);
    println!(
        "collection fuzz: {RAW_CASES} raw bodies ({answered} answered per event, {refused} refused whole) and {EVENT_BATCHES} mutated batches ({events_sent} events), {sent_bytes} bytes in {:.2}s, seed {SEED:#x}",
        started.elapsed().as_secs_f64()
    );
    app.stop().await;
    Ok(())
}
