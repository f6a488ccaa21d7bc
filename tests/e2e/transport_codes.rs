//! Requests refused before any handler runs answer with the contract's codes: a request that
//! does not decode is INVALID_ARGUMENT (tonic says INTERNAL), one over the size limit is
//! RESOURCE_EXHAUSTED (tonic says OUT_OF_RANGE), and neither stores anything.

use touchline_proto::collection::v1::IngestEventsResponse;
use touchline_testkit::{TestApp, token};

/// IngestEvents' request as raw bytes: field 1 (the events) carries whatever the test puts in.
#[derive(Clone, PartialEq, prost::Message)]
struct RawIngest {
    #[prost(bytes = "vec", repeated, tag = "1")]
    events: Vec<Vec<u8>>,
}

async fn ingest_raw(app: &TestApp, events: Vec<Vec<u8>>) -> tonic::Status {
    let channel = match app.channel(&token("acme", &["events:write"])) {
        Ok(channel) => channel,
        Err(err) => return tonic::Status::unknown(err.to_string()),
    };
    let mut grpc = tonic::client::Grpc::new(channel).max_encoding_message_size(64 << 20);
    if let Err(err) = grpc.ready().await {
        return tonic::Status::unknown(err.to_string());
    }
    let path = http::uri::PathAndQuery::from_static(
        "/touchline.collection.v1.CollectionService/IngestEvents",
    );
    let codec = tonic_prost::ProstCodec::<RawIngest, IngestEventsResponse>::default();
    match grpc
        .unary(tonic::Request::new(RawIngest { events }), path, codec)
        .await
    {
        Ok(_) => tonic::Status::ok("accepted"),
        Err(status) => status,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn undecodable_and_oversized_requests_get_the_contract_codes() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    // Garbage where an event should be.
    let garbage = ingest_raw(&app, vec![vec![0xff, 0xff, 0xff, 0xff]]).await;
    assert_eq!(garbage.code(), tonic::Code::InvalidArgument, "{garbage:?}");
    // A string field (the message id, tag 1 of Event) holding invalid UTF-8.
    let invalid_utf8 = ingest_raw(&app, vec![vec![0x0a, 0x02, 0xc3, 0x28]]).await;
    assert_eq!(
        invalid_utf8.code(),
        tonic::Code::InvalidArgument,
        "{invalid_utf8:?}"
    );
    // Nesting far past the decoder's recursion limit: properties (tag 9) of structs in structs.
    let mut nested: Vec<u8> = Vec::new();
    for _ in 0..200 {
        let mut field = vec![0x0a, 0x01, b'k'];
        let mut value = vec![0x2a];
        push_len(&mut value, nested.len());
        value.extend_from_slice(&nested);
        field.push(0x12);
        push_len(&mut field, value.len());
        field.extend_from_slice(&value);
        let mut entry = vec![0x0a];
        push_len(&mut entry, field.len());
        entry.extend_from_slice(&field);
        nested = entry;
    }
    let mut event = vec![0x4a];
    push_len(&mut event, nested.len());
    event.extend_from_slice(&nested);
    let deep = ingest_raw(&app, vec![event]).await;
    assert_eq!(deep.code(), tonic::Code::InvalidArgument, "{deep:?}");
    // 5.3 MB: over the 4 MiB message limit.
    let big = ingest_raw(&app, vec![vec![0x0a, 0x00]; 1]).await;
    assert_eq!(
        big.code(),
        tonic::Code::Ok,
        "a small valid request decodes: {big:?}"
    );
    let oversized = ingest_raw(&app, vec![vec![0x20; 5_300_000]]).await;
    assert_eq!(
        oversized.code(),
        tonic::Code::ResourceExhausted,
        "{oversized:?}"
    );
    app.stop().await;
    Ok(())
}

fn push_len(out: &mut Vec<u8>, mut len: usize) {
    loop {
        let byte = (len & 0x7f) as u8;
        len >>= 7;
        if len == 0 {
            out.push(byte);
            return;
        }
        out.push(byte | 0x80);
    }
}
