//! Conversions between the dictionary's domain types and protobuf.

use touchline_proto::common::v1::LocalizedText;
use touchline_proto::governance::v1 as pb;

use crate::domain::clean::{json_to_pb, timestamp_pb};
use crate::domain::dictionary::{Alias, EventDef, Localized, PropertySpec, Touchpoint, ValueKind};
use crate::domain::value::from_value;
use crate::store::dictionary::DraftEvent;

fn text(l: &Localized) -> Option<LocalizedText> {
    Some(LocalizedText {
        zh_cn: l.zh_cn.clone(),
        en: l.en.clone(),
    })
}

fn localized(t: Option<&LocalizedText>) -> Localized {
    t.map(|t| Localized {
        zh_cn: t.zh_cn.clone(),
        en: t.en.clone(),
    })
    .unwrap_or_default()
}

/// A domain event as protobuf, named under `parent`.
pub fn event_to_pb(parent: &str, def: &EventDef, draft: Option<&DraftEvent>) -> pb::CanonicalEvent {
    pb::CanonicalEvent {
        name: format!("{parent}/canonicalEvents/{}", def.event_name),
        event_name: def.event_name.clone(),
        display_name: text(&def.display_name),
        description: def.description.clone(),
        aliases: def
            .aliases
            .iter()
            .map(|a| pb::EventAlias {
                source: a.source.clone(),
                source_event_name: a.source_event_name.clone(),
                conditions: Vec::new(),
                property_renames: a.property_renames.clone().into_iter().collect(),
            })
            .collect(),
        properties: def
            .properties
            .iter()
            .map(|p| pb::PropertySpec {
                name: p.name.clone(),
                display_name: text(&p.display_name),
                description: p.description.clone(),
                r#type: p.value_type.to_proto(),
                required: p.required,
                allowed_values: p.allowed_values.iter().map(json_to_pb).collect(),
                pii: p.pii,
                unit: p.unit.clone(),
            })
            .collect(),
        touchpoint: Some(pb::TouchpointClassification {
            channel: def.touchpoint.channel.clone(),
            touchpoint: def.touchpoint.touchpoint.clone(),
            touchpoint_type: def.touchpoint.touchpoint_type,
            owning_department: def.touchpoint.owning_department,
        }),
        conversion: def.conversion,
        value_property: def.value_property.clone(),
        state: if def.deprecated { 2 } else { 1 },
        template: def.template.clone(),
        version: draft.map_or(0, |d| d.version),
        create_time: draft.map(|d| timestamp_pb(d.created_at)),
        update_time: draft.map(|d| timestamp_pb(d.updated_at)),
        etag: draft
            .map(|d| d.updated_at.timestamp_micros().to_string())
            .unwrap_or_default(),
        natural_key_properties: def.natural_key_properties.clone(),
        anonymous_allowed: def.anonymous_allowed,
    }
}

/// A protobuf event as a domain one (output-only fields ignored).
pub fn event_from_pb(id: &str, e: &pb::CanonicalEvent) -> EventDef {
    let t = e.touchpoint.clone().unwrap_or_default();
    EventDef {
        event_name: id.to_owned(),
        display_name: localized(e.display_name.as_ref()),
        description: e.description.clone(),
        aliases: e
            .aliases
            .iter()
            .map(|a| Alias {
                source: a.source.trim().to_owned(),
                source_event_name: a.source_event_name.trim().to_owned(),
                property_renames: a.property_renames.clone().into_iter().collect(),
            })
            .collect(),
        properties: e
            .properties
            .iter()
            .map(|p| PropertySpec {
                name: p.name.clone(),
                display_name: localized(p.display_name.as_ref()),
                description: p.description.clone(),
                value_type: ValueKind::from_proto(p.r#type),
                required: p.required,
                allowed_values: p.allowed_values.iter().map(from_value).collect(),
                pii: p.pii,
                unit: p.unit.clone(),
            })
            .collect(),
        touchpoint: Touchpoint {
            channel: t.channel,
            touchpoint: t.touchpoint,
            touchpoint_type: t.touchpoint_type,
            owning_department: t.owning_department,
        },
        conversion: e.conversion,
        value_property: e.value_property.clone(),
        deprecated: e.state() == pb::CanonicalEventState::Deprecated,
        natural_key_properties: e.natural_key_properties.clone(),
        anonymous_allowed: e.anonymous_allowed,
        template: String::new(),
    }
}
