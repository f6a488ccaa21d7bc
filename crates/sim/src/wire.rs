//! The generator's records in the platform's contract types: events as `touchline.common.v1.Event`
//! and every output file as a `touchline.collection.v1.Source` to register before sending.

use serde_json::{Map, Value};
use touchline_proto::collection::v1 as collection;
use touchline_proto::common::v1 as common;

use crate::ads::ReportRow;
use crate::layout::{FileFormat, FileSpec};
use crate::record::{Event, Field};
use crate::rng::{hash_str, uuid_from};
use crate::template::Template;

/// The generator's event as the contract's `Event`. `received_ms` is when a live collector
/// received it: a replay of the data set sends it along, as an import of data collected
/// earlier would, so clock-skew correction measures against the original receipt.
pub fn event_to_proto(event: Event, received_ms: Option<i64>) -> common::Event {
    let kind = match event.kind {
        "identify" => common::EventType::Identify,
        "page" => common::EventType::Page,
        "screen" => common::EventType::Screen,
        "alias" => common::EventType::Alias,
        _ => common::EventType::Track,
    };
    // A spoiled timestamp may be any JSON value; it is passed on as text so the
    // platform can quarantine it with the original kept.
    let original_timestamp = match &event.original_timestamp {
        Value::String(text) => text.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    common::Event {
        message_id: event.message_id,
        r#type: kind as i32,
        event: event.event.unwrap_or_default(),
        anonymous_id: event.anonymous_id.unwrap_or_default(),
        user_id: event.user_id.unwrap_or_default(),
        previous_id: String::new(),
        properties: Some(to_struct(event.properties)),
        traits: None,
        context: match event.context {
            Value::Object(map) => Some(to_struct(map)),
            _ => None,
        },
        original_timestamp,
        sent_at: event.sent_at.to_string(),
        identifiers: event
            .identifiers
            .into_iter()
            .map(|id| common::Identifier {
                r#type: id.kind.to_owned(),
                value: id.value,
                scope: id.scope.unwrap_or_default().to_owned(),
            })
            .collect(),
        source: event.source,
        channel: event.channel.to_owned(),
        received_at: received_ms.map(|ms| ms.to_string()).unwrap_or_default(),
    }
}

/// An ad daily report row as an event named `ad_daily_report`. A re-sent row gets a message id
/// of its own, as a later delivery of the report would: recognising it as a restatement of the
/// first is the platform's job, by the source's natural key.
pub fn report_row_event(spec: &FileSpec, row: &ReportRow) -> Event {
    let mut properties = Map::new();
    for (name, cell) in spec.header.iter().zip(&row.cells) {
        properties.insert((*name).to_owned(), cell.to_json());
    }
    let delivery = if row.resent { "|resent" } else { "" };
    let key = format!("{}|{}{delivery}", spec.path, row.key);
    let date = row
        .cells
        .first()
        .and_then(Field::as_str)
        .unwrap_or_default();
    Event {
        message_id: uuid_from(hash_str(&key), hash_str(&row.key)),
        kind: "track",
        event: Some("ad_daily_report".to_owned()),
        anonymous_id: None,
        user_id: None,
        properties,
        context: serde_json::json!({ "timezone": spec.tz_name, "file": spec.path }),
        original_timestamp: Value::String(date.to_owned()),
        sent_at: row.day_start_ms + crate::DAY_MS,
        channel: spec.channel,
        source: spec.source.clone(),
        identifiers: Vec::new(),
    }
}

/// The source to register for the records of `spec` when they are streamed as events. SDK
/// sources declare the ad platforms' click-id URL parameters as identifiers, so a landing
/// page's event links the ad click to the visitor.
pub fn source_spec(spec: &FileSpec, template: &Template) -> collection::Source {
    let identifier_fields = if spec.header.is_empty() {
        template
            .platforms
            .iter()
            .map(|p| collection::IdentifierField {
                source_field: p.click_param.to_owned(),
                identifier_type: "click_id".to_owned(),
                scope: p.name.to_owned(),
                scope_field: String::new(),
            })
            .collect()
    } else {
        Vec::new()
    };
    let kind = source_kind(spec);
    let timestamp_formats = if spec.header.is_empty() {
        vec!["epoch_millis".to_owned(), "rfc3339".to_owned()]
    } else if spec.naive_local_time {
        vec!["%Y-%m-%d %H:%M:%S".to_owned(), "%Y-%m-%d".to_owned()]
    } else {
        vec![
            "rfc3339".to_owned(),
            "epoch_seconds".to_owned(),
            "%Y-%m-%d".to_owned(),
        ]
    };
    collection::Source {
        display_name: spec.path.clone(),
        description: format!(
            "{} records of the reference data set ({}) / 参考数据集",
            spec.channel,
            match spec.format {
                FileFormat::Jsonl => "JSON Lines",
                FileFormat::Csv => "CSV",
            }
        ),
        kind: kind as i32,
        format: collection::DataFormat::Events as i32,
        channel: spec.channel.to_owned(),
        time_zone: spec.tz_name.to_owned(),
        timestamp_formats,
        identifier_fields,
        natural_key_fields: natural_key(spec).iter().map(|f| (*f).to_owned()).collect(),
        state: collection::SourceState::Active as i32,
        ..Default::default()
    }
}

/// Every source of the run `cfg` as `(source id, definition)`, in file order.
pub fn sources(
    cfg: &crate::SimConfig,
) -> Result<Vec<(String, collection::Source)>, crate::SimError> {
    let ctx = crate::engine::Ctx::new(cfg.clone())?;
    Ok(ctx
        .layout
        .files
        .iter()
        .map(|spec| (spec.source.clone(), source_spec(spec, ctx.t)))
        .collect())
}

/// The fields that identify a record of `spec` uniquely at its source.
pub fn natural_key(spec: &FileSpec) -> &'static [&'static str] {
    let has = |column: &str| spec.header.contains(&column);
    if spec.aggregate {
        &["date", "campaign_id"]
    } else if has("event") && has("order_id") {
        // Order logs carry one line per order state change.
        &["event", "order_id"]
    } else if has("order_id") {
        &["order_id"]
    } else if has("ticket_id") {
        &["ticket_id"]
    } else if has("response_id") {
        &["response_id"]
    } else if has("click_id") {
        &["click_id"]
    } else if has("send_id") {
        &["send_id"]
    } else {
        &[]
    }
}

fn source_kind(spec: &FileSpec) -> collection::SourceKind {
    use collection::SourceKind;
    match spec.channel {
        "app" => SourceKind::AppSdk,
        "mini_program" => SourceKind::MiniProgramSdk,
        "web" => SourceKind::WebSdk,
        "wechat_oa" => SourceKind::WechatOfficialAccount,
        "pos" => SourceKind::Pos,
        "crm" => SourceKind::Crm,
        "marketplace" => SourceKind::Marketplace,
        "webshop" => SourceKind::WebShop,
        "ads" => SourceKind::AdPlatform,
        "customer_service" => SourceKind::CustomerService,
        "survey" => SourceKind::Survey,
        _ => SourceKind::Custom,
    }
}

fn to_struct(map: Map<String, Value>) -> prost_types::Struct {
    prost_types::Struct {
        fields: map.into_iter().map(|(k, v)| (k, to_value(v))).collect(),
    }
}

fn to_value(value: Value) -> prost_types::Value {
    use prost_types::value::Kind;
    let kind = match value {
        Value::Null => Kind::NullValue(0),
        Value::Bool(b) => Kind::BoolValue(b),
        // JSON numbers beyond f64 do not occur in generated data; NaN marks one if they did.
        Value::Number(n) => Kind::NumberValue(n.as_f64().unwrap_or(f64::NAN)),
        Value::String(s) => Kind::StringValue(s),
        Value::Array(items) => Kind::ListValue(prost_types::ListValue {
            values: items.into_iter().map(to_value).collect(),
        }),
        Value::Object(map) => Kind::StructValue(to_struct(map)),
    };
    prost_types::Value { kind: Some(kind) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{SimConfig, TemplateKind};
    use crate::engine::Ctx;

    #[test]
    fn every_file_maps_to_a_source_with_its_zone_and_key() -> Result<(), crate::SimError> {
        let ctx = Ctx::new(SimConfig::new(TemplateKind::Retail, 10, 1))?;
        for spec in &ctx.layout.files {
            let source = source_spec(spec, ctx.t);
            assert_eq!(source.time_zone, spec.tz_name);
            assert_ne!(source.kind, collection::SourceKind::Unspecified as i32);
            if spec.channel == "pos" || spec.aggregate {
                assert!(!source.natural_key_fields.is_empty(), "{}", spec.path);
            }
        }
        Ok(())
    }

    #[test]
    fn a_resent_report_row_has_its_own_message_id() -> Result<(), crate::SimError> {
        let ctx = Ctx::new(SimConfig::new(TemplateKind::Retail, 10, 1))?;
        let spec = &ctx.layout.files[ctx.layout.ad0];
        let row = ReportRow {
            file: ctx.layout.ad0,
            key: "2026-05-01|c1".into(),
            cells: vec![Field::Str("2026-05-01".into())],
            day_start_ms: 0,
            resent: false,
        };
        let first = report_row_event(spec, &row);
        let again = report_row_event(
            spec,
            &ReportRow {
                resent: true,
                ..row.clone()
            },
        );
        assert_ne!(first.message_id, again.message_id);
        assert_eq!(first.properties, again.properties);
        Ok(())
    }
}
