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
