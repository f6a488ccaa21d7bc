//! ImportFile: a CSV upload broken half way and resumed stores every row
//! exactly once; malformed rows are rejected by row number without failing
//! the import.

use sqlx::Connection as _;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use touchline_proto::collection::v1::collection_service_client::CollectionServiceClient;
use touchline_proto::collection::v1::{
    CreateSourceRequest, DataFormat, FieldMapping, GetImportRequest, IdentifierField, ImportChunk,
    ImportFileRequest, ImportMetadata, ImportRowStatus, ImportState, ListImportRowResultsRequest,
    ListImportsRequest, Source, SourceKind,
};
use touchline_testkit::{TestApp, token};

const ROWS: usize = 2_000;
const CHUNK: usize = 4_096;

fn file() -> Vec<u8> {
    let mut text = String::from("receipt_no,store,paid_at,phone,total\n");
    for i in 1..=ROWS {
        if i == 777 {
            // No receipt number: rejected, the rest goes on.
            text.push_str(",s1,2026-11-24 10:00:00,13800000000,1\n");
        } else {
            text.push_str(&format!(
                "R{i:05},s{},2026-11-24 10:{:02}:00,1380000{i:04},{}.50\n",
                i % 7,
                i % 60,
                i * 3
            ));
        }
    }
    text.into_bytes()
}

fn pos_source() -> Source {
    Source {
        kind: SourceKind::Pos as i32,
        format: DataFormat::Csv as i32,
        channel: "pos".to_owned(),
        time_zone: "Asia/Shanghai".to_owned(),
        timestamp_formats: vec!["%Y-%m-%d %H:%M:%S".to_owned()],
        natural_key_fields: vec!["receipt_no".to_owned()],
        default_event_name: "purchase".to_owned(),
        field_mappings: vec![FieldMapping {
            source_field: "paid_at".to_owned(),
            target_field: "original_timestamp".to_owned(),
            ..Default::default()
        }],
        identifier_fields: vec![IdentifierField {
            source_field: "phone".to_owned(),
            identifier_type: "phone".to_owned(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// Sends the metadata and the chunks from `from` up to `until` bytes, then
/// half-closes; returns the import's state from the last answer.
async fn upload(
    client: &mut CollectionServiceClient<
        tonic::service::interceptor::InterceptedService<
            tonic::transport::Channel,
            touchline_runtime::client::CallCredentials,
        >,
    >,
    metadata: &ImportMetadata,
    data: &[u8],
    from: usize,
    until: usize,
) -> anyhow::Result<ImportState> {
    let (tx, rx) = mpsc::channel(8);
    tx.send(ImportFileRequest {
        metadata: Some(metadata.clone()),
        chunk: None,
    })
    .await?;
    let mut answers = client
        .import_file(ReceiverStream::new(rx))
        .await?
        .into_inner();
    let mut state = ImportState::Unspecified;
    if let Some(answer) = answers.message().await? {
        state = answer.file_import.unwrap_or_default().state();
    }
    let mut offset = from;
    while offset < until {
        let end = (offset + CHUNK).min(until);
        tx.send(ImportFileRequest {
            metadata: None,
            chunk: Some(ImportChunk {
                offset: offset as i64,
                data: data[offset..end].to_vec(),
            }),
        })
        .await?;
        offset = end;
    }
    drop(tx);
    while let Some(answer) = answers.message().await? {
        state = answer.file_import.unwrap_or_default().state();
    }
    Ok(state)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_import_resumes_and_stores_every_row_once() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token("acme", &["events:write", "sources:write", "sources:read"]);
    let mut client = CollectionServiceClient::new(app.channel(&token)?);
    client
        .create_source(CreateSourceRequest {
            source_id: "pos-sh".to_owned(),
            source: Some(pos_source()),
            ..Default::default()
        })
        .await?;
    let data = file();
    let mut db = sqlx::PgConnection::connect(&app.db.url).await?;
    let sha256: String = sqlx::query_scalar("SELECT encode(sha256($1), 'hex')")
        .bind(&data)
        .fetch_one(&mut db)
        .await?;
    let metadata = ImportMetadata {
        source: "tenants/acme/sources/pos-sh".to_owned(),
        format: DataFormat::Csv as i32,
        file_name: "receipts.csv".to_owned(),
        size_bytes: data.len() as i64,
        sha256,
        import_id: "receipts-1".to_owned(),
        ..Default::default()
    };

    // First attempt: about half the file, cut off mid-row.
    let half = data.len() / 2 + 17;
    let state = upload(&mut client, &metadata, &data, 0, half).await?;
    assert_eq!(state, ImportState::Uploading);
    let name = "tenants/acme/imports/receipts-1".to_owned();
    let midway = client
        .get_import(GetImportRequest { name: name.clone() })
        .await?
        .into_inner()
        .file_import
        .unwrap_or_default();
    assert!(midway.received_bytes > 0 && (midway.received_bytes as usize) <= half);
    assert!(midway.rows_processed > 0 && (midway.rows_processed as usize) < ROWS);

    // Resume from the committed offset, resending a few bytes before it.
    let from = (midway.received_bytes as usize).saturating_sub(100);
    let state = upload(&mut client, &metadata, &data, from, data.len()).await?;
    assert_eq!(state, ImportState::Succeeded);

    let done = client
        .get_import(GetImportRequest { name: name.clone() })
        .await?
        .into_inner()
        .file_import
        .unwrap_or_default();
    assert_eq!(done.rows_processed as usize, ROWS);
    assert_eq!(done.rows_accepted as usize, ROWS - 1);
    assert_eq!(done.rows_rejected, 1);
    assert_eq!(done.received_bytes as usize, data.len());
    let stored: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT import_row) FROM collection.raw_events
          WHERE tenant_id = 'acme' AND file_import = 'receipts-1'",
    )
    .fetch_one(&mut db)
    .await?;
    let total: i64 =
        sqlx::query_scalar("SELECT count(*) FROM collection.raw_events WHERE tenant_id = 'acme'")
            .fetch_one(&mut db)
            .await?;
    assert_eq!(stored as usize, ROWS - 1);
    assert_eq!(total as usize, ROWS - 1, "no row stored twice");

    let rejected = client
        .list_import_row_results(ListImportRowResultsRequest {
            parent: name.clone(),
            statuses: vec![ImportRowStatus::Rejected as i32],
            ..Default::default()
        })
        .await?
        .into_inner()
        .rows;
    assert_eq!(rejected.len(), 1);
    assert_eq!(rejected[0].row, 777);
    assert_eq!(rejected[0].violations[0].reason, "MISSING_NATURAL_KEY");
    assert!(rejected[0].raw.starts_with(",s1,"));

    // Importing the same file again under a new id stores nothing new.
    let again = ImportMetadata {
        import_id: "receipts-2".to_owned(),
        ..metadata
    };
    let state = upload(&mut client, &again, &data, 0, data.len()).await?;
    assert_eq!(state, ImportState::Succeeded);
    let second = client
        .get_import(GetImportRequest {
            name: "tenants/acme/imports/receipts-2".to_owned(),
        })
        .await?
        .into_inner()
        .file_import
        .unwrap_or_default();
    assert_eq!(second.rows_duplicate as usize, ROWS - 1);
    assert_eq!(second.rows_accepted, 0);
    let listed = client
        .list_imports(ListImportsRequest::default())
        .await?
        .into_inner()
        .file_imports;
    assert_eq!(listed.len(), 2);
    app.stop().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_checksum_fails_the_import_with_data_loss() -> anyhow::Result<()> {
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token("acme", &["events:write", "sources:write", "sources:read"]);
    let mut client = CollectionServiceClient::new(app.channel(&token)?);
    client
        .create_source(CreateSourceRequest {
            source_id: "pos-sh".to_owned(),
            source: Some(pos_source()),
            ..Default::default()
        })
        .await?;
    let data = file();
    let metadata = ImportMetadata {
        source: "tenants/acme/sources/pos-sh".to_owned(),
        format: DataFormat::Csv as i32,
        size_bytes: data.len() as i64,
        sha256: "0".repeat(64),
        import_id: "bad-sum".to_owned(),
        ..Default::default()
    };
    let err = upload(&mut client, &metadata, &data, 0, data.len())
        .await
        .expect_err("checksum");
    let status = err.downcast::<tonic::Status>()?;
    assert_eq!(status.code(), tonic::Code::DataLoss);
    let failed = client
        .get_import(GetImportRequest {
            name: "tenants/acme/imports/bad-sum".to_owned(),
        })
        .await?
        .into_inner()
        .file_import
        .unwrap_or_default();
    assert_eq!(failed.state(), ImportState::Failed);
    app.stop().await;
    Ok(())
}

/// A small POS export whose `paid_at` column the source maps to the event time, with a
/// Chinese store name: the same rows in UTF-8 and in GBK.
fn mapped_file(prefix: &str, store: &[u8]) -> Vec<u8> {
    let mut data = b"receipt_no,store,paid_at,phone,total\n".to_vec();
    for i in 1..=3 {
        data.extend_from_slice(format!("{prefix}{i:03},").as_bytes());
        data.extend_from_slice(store);
        data.extend_from_slice(
            format!(",2026-11-24 10:0{i}:00,1391234000{i},{i}9.00\n").as_bytes(),
        );
    }
    data
}

/// Imported rows travel the whole pipeline: the mapped column becomes the event time in
/// governance, in UTF-8 and GBK alike, instead of every row being quarantined
/// FIELD_MAPPING_FAILED; and a file whose quote is never closed fails instead of ending
/// SUCCEEDED with its rows swallowed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn imported_rows_are_cleaned_by_their_mapping_and_a_broken_quote_fails() -> anyhow::Result<()>
{
    use std::time::Duration;
    use touchline_proto::collection::v1::CsvOptions;
    use touchline_proto::modeling::v1::ListEventsRequest;
    use touchline_proto::modeling::v1::modeling_service_client::ModelingServiceClient;
    crate::init();
    let app = TestApp::spawn().await?;
    let token = token(
        "acme",
        &[
            "events:write",
            "sources:write",
            "sources:read",
            "models:read",
        ],
    );
    let mut client = CollectionServiceClient::new(app.channel(&token)?);
    for (id, encoding) in [("pos-utf8", "utf-8"), ("pos-gbk", "gbk")] {
        let mut source = pos_source();
        source.csv_options = Some(CsvOptions {
            encoding: encoding.to_owned(),
            ..Default::default()
        });
        client
            .create_source(CreateSourceRequest {
                source_id: id.to_owned(),
                source: Some(source),
                ..Default::default()
            })
            .await?;
    }
    let mut db = sqlx::PgConnection::connect(&app.db.url).await?;
    let mut sha256 = async |data: &[u8]| -> anyhow::Result<String> {
        Ok(sqlx::query_scalar("SELECT encode(sha256($1), 'hex')")
            .bind(data)
            .fetch_one(&mut db)
            .await?)
    };
    let utf8 = mapped_file("U", "门店".as_bytes());
    let gbk = mapped_file("G", &[0xc3, 0xc5, 0xb5, 0xea]);
    for (id, data) in [("pos-utf8", &utf8), ("pos-gbk", &gbk)] {
        let metadata = ImportMetadata {
            source: format!("tenants/acme/sources/{id}"),
            format: DataFormat::Csv as i32,
            size_bytes: data.len() as i64,
            sha256: sha256(data).await?,
            import_id: format!("{id}-1"),
            ..Default::default()
        };
        let state = upload(&mut client, &metadata, data, 0, data.len()).await?;
        assert_eq!(state, ImportState::Succeeded, "{id}");
    }
    let modeling = ModelingServiceClient::new(app.channel(&token)?);
    let events = touchline_testkit::eventually(Duration::from_secs(30), || {
        let mut modeling = modeling.clone();
        async move {
            let page = modeling
                .list_events(ListEventsRequest {
                    page_size: 100,
                    ..Default::default()
                })
                .await?
                .into_inner();
            Ok((page.events.len() >= 6).then_some(page.events))
        }
    })
    .await?;
    assert_eq!(events.len(), 6, "every imported row is clean");
    for event in &events {
        let time = event.event_time.unwrap_or_default();
        // 2026-11-24 10:0x:00 in Shanghai is 02:0x:00 UTC.
        assert_eq!(
            time.seconds / 60 % (24 * 60) / 60,
            2,
            "{}",
            event.message_id
        );
    }

    let broken = b"receipt_no,store,paid_at,phone,total\nB1,\"s1,2026-11-24 10:00:00,13912340001,1\nB2,s1,2026-11-24 10:01:00,13912340002,2\nB3,s1,2026-11-24 10:02:00,13912340003,3\n".to_vec();
    let metadata = ImportMetadata {
        source: "tenants/acme/sources/pos-utf8".to_owned(),
        format: DataFormat::Csv as i32,
        size_bytes: broken.len() as i64,
        sha256: sha256(&broken).await?,
        import_id: "broken-quote".to_owned(),
        ..Default::default()
    };
    let outcome = upload(&mut client, &metadata, &broken, 0, broken.len()).await;
    let failed = client
        .get_import(GetImportRequest {
            name: "tenants/acme/imports/broken-quote".to_owned(),
        })
        .await?
        .into_inner()
        .file_import
        .unwrap_or_default();
    assert!(outcome.is_err(), "the upload is refused");
    assert_eq!(failed.state(), ImportState::Failed);
    assert_eq!(
        failed.rows_processed, 0,
        "no row is taken from the unreadable tail"
    );
    app.stop().await;
    Ok(())
}
