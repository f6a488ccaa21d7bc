//! A delivery's body: `{"triggers": [...]}`, each trigger in the contract's JSON mapping
//! (lowerCamelCase names, 64-bit integers as strings, enums by name, RFC 3339 times), so a
//! receiver can decode it with any protobuf JSON library.

use std::collections::HashMap;

use serde_json::{Map, Value, json};
use touchline_proto::common::v1::Identifier;
use touchline_proto::modeling::v1 as pb;

use crate::store::activation::{self as store, StoredTrigger};

fn enum_name<E: TryFrom<i32>>(number: i16, name: impl Fn(E) -> &'static str) -> Value {
    E::try_from(i32::from(number)).map_or_else(|_| json!(i32::from(number)), |e| json!(name(e)))
}

/// One trigger in the contract's JSON mapping.
pub fn trigger_json(tenant: &str, t: &StoredTrigger) -> Value {
    let mut object = Map::new();
    object.insert("sequence".into(), json!(t.sequence.to_string()));
    object.insert(
        "type".into(),
        enum_name(t.trigger_type, |e: pb::TriggerType| e.as_str_name()),
    );
    object.insert("tenant".into(), json!(format!("tenants/{tenant}")));
    object.insert(
        "person".into(),
        json!(format!("tenants/{tenant}/persons/{}", t.person_id)),
    );
    object.insert("personId".into(), json!(t.person_id.to_string()));
    object.insert(
        "triggerTime".into(),
        json!(
            t.triggered_at
                .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
        ),
    );
    if !t.segment_id.is_empty() {
        object.insert(
            "segment".into(),
            json!(format!("tenants/{tenant}/segments/{}", t.segment_id)),
        );
        object.insert(
            "segmentChangeReason".into(),
            enum_name(t.reason, |e: pb::SegmentChangeReason| e.as_str_name()),
        );
    }
    if !t.cause_message_id.is_empty() {
        object.insert("causeMessageId".into(), json!(t.cause_message_id));
    }
    if !t.definition_id.is_empty() {
        object.insert(
            "triggerDefinition".into(),
            json!(format!(
                "tenants/{tenant}/triggerDefinitions/{}",
                t.definition_id
            )),
        );
    }
    match t.trigger_type {
        store::LIFECYCLE_STAGE_CHANGED => {
            object.insert(
                "previousLifecycleStage".into(),
                enum_name(t.previous_value, |e: pb::LifecycleStage| e.as_str_name()),
            );
            object.insert(
                "lifecycleStage".into(),
                enum_name(t.current_value, |e: pb::LifecycleStage| e.as_str_name()),
            );
        }
        store::RFM_SEGMENT_CHANGED => {
            object.insert(
                "previousRfmSegment".into(),
                enum_name(t.previous_value, |e: pb::RfmSegment| e.as_str_name()),
            );
            object.insert(
                "rfmSegment".into(),
                enum_name(t.current_value, |e: pb::RfmSegment| e.as_str_name()),
            );
        }
        _ => {}
    }
    if let Some(score) = t.churn_score.filter(|_| {
        matches!(
            t.trigger_type,
            store::CHURN_FLAG_RAISED | store::CHURN_FLAG_CLEARED
        )
    }) {
        object.insert("churnScore".into(), json!(score));
    }
    Value::Object(object)
}

/// The body of a delivery of `triggers`.
pub fn delivery_body<'a>(
    tenant: &str,
    triggers: impl IntoIterator<Item = &'a StoredTrigger>,
    exported: &HashMap<uuid::Uuid, Vec<Identifier>>,
) -> Vec<u8> {
    let list: Vec<Value> = triggers
        .into_iter()
        .map(|t| {
            let mut one = trigger_json(tenant, t);
            if let (Some(held), Some(object)) = (exported.get(&t.person_id), one.as_object_mut())
                && !held.is_empty()
            {
                let identifiers: Vec<Value> = held
                    .iter()
                    .map(|i| json!({"type": i.r#type, "value": i.value, "scope": i.scope}))
                    .collect();
                object.insert("identifiers".into(), json!(identifiers));
            }
            one
        })
        .collect();
    json!({ "triggers": list }).to_string().into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trigger_reads_as_the_contract_json_mapping() {
        let trigger = StoredTrigger {
            sequence: 42,
            trigger_type: 1,
            person_id: uuid::Uuid::from_u128(7),
            segment_id: "vip".into(),
            reason: 9,
            triggered_at: chrono::DateTime::from_timestamp_millis(1_780_000_000_123)
                .unwrap_or_default(),
            previous_value: 0,
            current_value: 0,
            churn_score: None,
            definition_id: "abandoned".into(),
            cause_message_id: "order-7".into(),
        };
        let body: Value =
            serde_json::from_slice(&delivery_body("acme", &[trigger], &HashMap::new()))
                .unwrap_or_default();
        let first = &body["triggers"][0];
        assert_eq!(first["sequence"], "42");
        assert_eq!(first["type"], "TRIGGER_TYPE_SEGMENT_ENTERED");
        assert_eq!(first["segment"], "tenants/acme/segments/vip");
        assert_eq!(
            first["segmentChangeReason"],
            "SEGMENT_CHANGE_REASON_SEGMENT_CREATED"
        );
        assert_eq!(first["triggerTime"], "2026-05-28T20:26:40.123Z");
        assert_eq!(first["tenant"], "tenants/acme");
        assert_eq!(first["causeMessageId"], "order-7");
        assert_eq!(
            first["triggerDefinition"],
            "tenants/acme/triggerDefinitions/abandoned"
        );
    }
}
