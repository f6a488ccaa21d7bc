//! File imports in a declared encoding, through the importer the gRPC
//! adapter drives, on a real PostgreSQL (a fresh database per test): a GBK
//! export with Chinese names is stored as the text it holds, a row with
//! bytes that are not GBK is rejected alone at its offset, and an upload
//! broken in the middle of a character resumes and stores every row once.

use std::sync::Arc;

use prost::Message as _;
use sha2::{Digest as _, Sha256};
use sqlx::PgPool;
use touchline_collection::CollectionConfig;
use touchline_collection::imports::{Importer, Session, Step};
use touchline_collection::sources;
use touchline_db::testing::TestDatabase;
use touchline_proto::collection::v1::{
    CsvOptions, DataFormat, FieldMapping, FileImport, IdentifierField, ImportChunk, ImportMetadata,
    ImportRowStatus, ImportState, Source, SourceKind,
};
use touchline_proto::common::v1::Event;

use crate::helpers::fresh_pool;

const TENANT: &str = "acme";
const ROWS: usize = 300;
/// The row whose name holds a byte GBK has no character for.
const BAD_ROW: usize = 150;
/// An odd chunk size, so chunks end inside two-byte characters.
const CHUNK: usize = 997;

const NAMES: [&str; 4] = ["张三", "李四", "王小明", "欧阳娜娜"];
const NOTE: &str = "买了\"羽绒服\",会员价";

fn gbk(text: &str) -> Vec<u8> {
    let (bytes, _, unmappable) = encoding_rs::GBK.encode(text);
    assert!(!unmappable, "{text:?} is all GBK");
    bytes.into_owned()
}

/// A POS export as Windows tools write it (GBK, CRLF), and where each
/// data row starts.
fn export() -> (Vec<u8>, Vec<usize>) {
    let mut data = gbk("单号,门店,付款时间,手机,姓名,备注\r\n");
    let mut offsets = Vec::with_capacity(ROWS);
    for i in 1..=ROWS {
        offsets.push(data.len());
        let head = format!(
            "R{i:04},上海{}店,2026-11-24 10:{:02}:00,1380000{i:04},",
            i % 3,
            i % 60
        );
        data.extend(gbk(&head));
        if i == BAD_ROW {
            // 0xFF is never a GBK byte.
            data.extend(gbk("王"));
            data.push(0xFF);
        } else {
            data.extend(gbk(NAMES[i % NAMES.len()]));
        }
        let quoted = NOTE.replace('"', "\"\"");
        data.extend(gbk(&format!(",\"{quoted}\"\r\n")));
    }
    (data, offsets)
}

fn pos_source() -> Source {
    Source {
        kind: SourceKind::Pos as i32,
        format: DataFormat::Csv as i32,
        channel: "pos".to_owned(),
        time_zone: "Asia/Shanghai".to_owned(),
        timestamp_formats: vec!["%Y-%m-%d %H:%M:%S".to_owned()],
        natural_key_fields: vec!["单号".to_owned()],
        default_event_name: "purchase".to_owned(),
        field_mappings: vec![FieldMapping {
            source_field: "付款时间".to_owned(),
            target_field: "original_timestamp".to_owned(),
            ..Default::default()
        }],
        identifier_fields: vec![IdentifierField {
            source_field: "手机".to_owned(),
            identifier_type: "phone".to_owned(),
            ..Default::default()
        }],
        csv_options: Some(CsvOptions {
            encoding: "GBK".to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn metadata(data: &[u8], import_id: &str) -> ImportMetadata {
    ImportMetadata {
        source: format!("tenants/{TENANT}/sources/pos-gbk"),
        format: DataFormat::Csv as i32,
        file_name: "门店流水.csv".to_owned(),
        size_bytes: i64::try_from(data.len()).unwrap_or(i64::MAX),
        sha256: hex::encode(Sha256::digest(data)),
        import_id: import_id.to_owned(),
        ..Default::default()
    }
}

async fn setup() -> anyhow::Result<(TestDatabase, PgPool, Importer)> {
    let (db, pool) = fresh_pool().await?;
    sources::create(&pool, TENANT, "pos-gbk", pos_source(), "", false).await?;
    let importer = Importer::new(pool.clone(), Arc::new(CollectionConfig::default()));
    Ok((db, pool, importer))
}

/// Sends `data[from..until]` in chunks; the import as the last step left it.
async fn send(
    session: &mut Session,
    data: &[u8],
    from: usize,
    until: usize,
) -> anyhow::Result<FileImport> {
    let mut offset = from;
    let mut state = session.file_import();
    while offset < until {
        let end = (offset + CHUNK).min(until);
        let chunk = ImportChunk {
            offset: i64::try_from(offset)?,
            data: data[offset..end].to_vec(),
        };
        match session.chunk(chunk).await? {
            Step::Quiet => state = session.file_import(),
            Step::Progress(now) | Step::Done(now) => state = now,
        }
        offset = end;
    }
    Ok(state)
}

/// The stored events of an import, in row order.
async fn stored(pool: &PgPool, import_id: &str) -> anyhow::Result<Vec<(i64, Event)>> {
    let rows: Vec<(i64, Vec<u8>)> = sqlx::query_as(
        "SELECT import_row, payload FROM collection.raw_events
          WHERE tenant_id = $1 AND file_import = $2 ORDER BY import_row",
    )
    .bind(TENANT)
    .bind(import_id)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|(row, payload)| Ok((row, Event::decode(payload.as_slice())?)))
        .collect()
}

fn property(event: &Event, name: &str) -> Option<String> {
    use prost_types::value::Kind;
    match &event.properties.as_ref()?.fields.get(name)?.kind {
        Some(Kind::StringValue(text)) => Some(text.clone()),
        _ => None,
    }
}

/// Every good row is stored once, with its Chinese text intact.
fn check_events(events: &[(i64, Event)]) {
    assert_eq!(events.len(), ROWS - 1, "every good row, once");
    for (row, event) in events {
        let i = usize::try_from(*row).unwrap_or(0);
        assert_ne!(i, BAD_ROW);
        assert_eq!(
            property(event, "姓名").as_deref(),
            Some(NAMES[i % NAMES.len()]),
            "row {i}"
        );
        assert_eq!(property(event, "备注").as_deref(), Some(NOTE), "row {i}");
        assert_eq!(
            property(event, "门店"),
            Some(format!("上海{}店", i % 3)),
            "row {i}"
        );
        assert_eq!(event.identifiers[0].value, format!("1380000{i:04}"));
        assert_eq!(
            event.original_timestamp,
            format!("2026-11-24 10:{:02}:00", i % 60)
        );
    }
}

#[tokio::test]
async fn a_gbk_export_is_stored_as_its_chinese_text() -> anyhow::Result<()> {
    let (_db, pool, importer) = setup().await?;
    let (data, offsets) = export();
    let mut session = importer
        .open(TENANT, "tester", metadata(&data, "gbk-1"))
        .await?;
    let done = send(&mut session, &data, 0, data.len()).await?;
    assert_eq!(done.state(), ImportState::Succeeded);
    assert_eq!(done.rows_processed as usize, ROWS);
    assert_eq!(done.rows_accepted as usize, ROWS - 1);
    assert_eq!(done.rows_rejected, 1);

    check_events(&stored(&pool, "gbk-1").await?);

    let (rejected, _) = importer
        .rows(TENANT, "gbk-1", &[ImportRowStatus::Rejected as i32], 0, "")
        .await?;
    assert_eq!(rejected.len(), 1);
    let bad = &rejected[0];
    assert_eq!(bad.row as usize, BAD_ROW);
    assert_eq!(bad.violations[0].reason, "INVALID_ENCODING");
    assert_eq!(bad.violations[0].description, "not valid GBK");
    assert!(bad.raw.starts_with("R0150,上海0店,"), "{}", bad.raw);

    // Offsets are the file's bytes: each row's offset finds it in the file.
    let (all, _) = importer.rows(TENANT, "gbk-1", &[], 0, "").await?;
    assert_eq!(all.len(), ROWS);
    for result in &all {
        let at = usize::try_from(result.byte_offset)?;
        let row = usize::try_from(result.row)?;
        assert_eq!(at, offsets[row - 1], "row {row}");
    }
    Ok(())
}

#[tokio::test]
async fn a_broken_gbk_upload_resumes_mid_character_and_stores_every_row_once() -> anyhow::Result<()>
{
    let (_db, pool, importer) = setup().await?;
    let (data, offsets) = export();
    // Break the upload after the first byte of 上, past `R0150,`.
    let cut = offsets[ROWS / 2] + "R0150,".len() + 1;
    assert_eq!(&data[cut - 1..cut + 1], gbk("上").as_slice());
    let mut first = importer
        .open(TENANT, "tester", metadata(&data, "gbk-2"))
        .await?;
    let midway = send(&mut first, &data, 0, cut).await?;
    drop(first);
    assert_eq!(midway.state(), ImportState::Uploading);
    let committed = usize::try_from(midway.received_bytes)?;
    assert!(committed > 0 && committed <= cut);
    assert!(midway.rows_processed > 0 && (midway.rows_processed as usize) < ROWS);

    // Resume by token from the committed offset, resending a few bytes.
    let resume = ImportMetadata {
        resume_token: midway.resume_token.clone(),
        ..metadata(&data, "")
    };
    let mut second = importer.open(TENANT, "tester", resume).await?;
    let done = send(
        &mut second,
        &data,
        committed.saturating_sub(100),
        data.len(),
    )
    .await?;
    assert_eq!(done.state(), ImportState::Succeeded);
    assert_eq!(done.rows_processed as usize, ROWS);
    assert_eq!(done.rows_accepted as usize, ROWS - 1);
    assert_eq!(done.rows_rejected, 1);
    assert_eq!(done.received_bytes as usize, data.len());

    check_events(&stored(&pool, "gbk-2").await?);
    let total: i64 = sqlx::query_scalar("SELECT count(*) FROM collection.raw_events")
        .fetch_one(&pool)
        .await?;
    assert_eq!(total as usize, ROWS - 1, "no row stored twice");
    Ok(())
}

#[tokio::test]
async fn an_unknown_or_misplaced_encoding_is_refused() -> anyhow::Result<()> {
    let (_db, pool, importer) = setup().await?;
    let (data, _) = export();
    let reason = |err: Option<String>| err.unwrap_or_default();
    let unknown = ImportMetadata {
        csv_options: Some(CsvOptions {
            encoding: "Big5".to_owned(),
            ..Default::default()
        }),
        ..metadata(&data, "gbk-3")
    };
    let err = importer.open(TENANT, "tester", unknown).await.err();
    let err = reason(err.map(|e| e.to_string()));
    assert!(err.contains("encoding"), "{err}");

    // JSON Lines is UTF-8, whatever encoding its source's CSV options name.
    let json = Source {
        format: DataFormat::JsonLines as i32,
        ..pos_source()
    };
    sources::create(&pool, TENANT, "app-json", json, "", false).await?;
    let lines = ImportMetadata {
        source: format!("tenants/{TENANT}/sources/app-json"),
        format: DataFormat::JsonLines as i32,
        ..metadata(b"{}", "json-1")
    };
    let err = importer.open(TENANT, "tester", lines).await.err();
    let err = reason(err.map(|e| e.to_string()));
    assert!(err.contains("JSON Lines files are read as UTF-8"), "{err}");
    Ok(())
}

/// A report export that opens with title lines before its header, each
/// longer than a chunk, so an upload can break between two of them.
fn titled_export() -> (Vec<u8>, usize) {
    let mut data = Vec::new();
    for title in ["门店日报 (Store daily report)", "导出时间 2026-11-24"] {
        data.extend_from_slice(title.as_bytes());
        data.extend(std::iter::repeat_n(b' ', 1_200));
        data.extend_from_slice(b"\r\n");
    }
    data.extend_from_slice("单号,门店,付款时间,手机,姓名,备注\r\n".as_bytes());
    let rows = 20;
    for i in 1..=rows {
        let line = format!(
            "T{i:04},上海{}店,2026-11-24 11:{:02}:00,1390000{i:04},{},ok\r\n",
            i % 3,
            i % 60,
            NAMES[i % NAMES.len()]
        );
        data.extend_from_slice(line.as_bytes());
    }
    (data, rows)
}

#[tokio::test]
async fn an_upload_broken_between_skipped_lines_resumes_with_the_right_header() -> anyhow::Result<()>
{
    let (_db, pool, importer) = setup().await?;
    let source = Source {
        csv_options: Some(CsvOptions {
            skip_lines: 2,
            ..Default::default()
        }),
        ..pos_source()
    };
    sources::create(&pool, TENANT, "pos-titled", source, "", false).await?;
    let (data, rows) = titled_export();
    let meta = |import_id: &str| ImportMetadata {
        source: format!("tenants/{TENANT}/sources/pos-titled"),
        file_name: "日报.csv".to_owned(),
        ..metadata(&data, import_id)
    };
    // Two chunks end inside the second title line, after the first.
    let first_title = data.iter().position(|b| *b == b'\n').unwrap_or(0) + 1;
    let cut = 2 * CHUNK;
    assert!(first_title < cut && cut < 2 * first_title);
    let mut first = importer.open(TENANT, "tester", meta("titled")).await?;
    let midway = send(&mut first, &data, 0, cut).await?;
    drop(first);
    assert_eq!(midway.state(), ImportState::Uploading);
    assert_eq!(midway.rows_processed, 0);

    let resume = ImportMetadata {
        resume_token: midway.resume_token.clone(),
        ..meta("")
    };
    let mut second = importer.open(TENANT, "tester", resume).await?;
    let from = usize::try_from(midway.received_bytes)?;
    let done = send(&mut second, &data, from, data.len()).await?;
    assert_eq!(done.state(), ImportState::Succeeded);
    assert_eq!(done.rows_processed as usize, rows);
    assert_eq!(done.rows_accepted as usize, rows);

    let events = stored(&pool, "titled").await?;
    assert_eq!(events.len(), rows);
    for (row, event) in &events {
        let i = usize::try_from(*row)?;
        assert_eq!(
            property(event, "姓名").as_deref(),
            Some(NAMES[i % NAMES.len()]),
            "row {i} is read under the file's own header"
        );
        assert_eq!(event.identifiers[0].value, format!("1390000{i:04}"));
    }
    Ok(())
}
