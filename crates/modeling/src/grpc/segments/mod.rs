//! Conversions of the segment calls: the contract's rules into the service's, stored rows
//! and changes into replies, and the page tokens. Rules live in `journeys::segments`; this
//! only changes shapes, and names the conditions the service cannot take yet.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use touchline_proto::modeling::v1 as pb;
use uuid::Uuid;

use super::journeys::timestamp_ms;
use crate::error::ModelingError;
use crate::journeys::query::Violations;
use rules::{pb_rule, rule};

mod rules;
use crate::service::{ChangesPage, MembersPage, Preview, SegmentInput, SegmentReply};
use crate::store::segments::{SegmentRow, StoredChange};

pub(super) use crate::domain::segment_name;

fn timestamp(at: chrono::DateTime<chrono::Utc>) -> prost_types::Timestamp {
    timestamp_ms(at.timestamp_millis())
}

/// The contract's segment for a stored one.
pub(super) fn segment(tenant: &str, row: &SegmentRow) -> pb::Segment {
    let state = if row.built_rule_revision == Some(row.rule_revision) {
        pb::SegmentState::Active
    } else {
        pb::SegmentState::Building
    };
    pb::Segment {
        name: format!("tenants/{tenant}/segments/{}", row.id),
        display_name: row.definition.display_name.clone(),
        description: row.definition.description.clone(),
        rule: Some(pb_rule(tenant, &row.definition.rule)),
        state: state as i32,
        member_count: row.member_count,
        last_change_sequence: row.last_change_sequence,
        reevaluation_interval: Some(prost_types::Duration {
            seconds: row.definition.reevaluation_secs,
            nanos: 0,
        }),
        create_time: Some(timestamp(row.created_at)),
        update_time: Some(timestamp(row.updated_at)),
        etag: row.revision.to_string(),
        identifier_update_types: row.definition.identifier_update_types.clone(),
    }
}

/// The fields a create or update sends.
pub(super) fn input(tenant: &str, segment: Option<&pb::Segment>) -> SegmentInput {
    let mut problems = Violations::default();
    let Some(s) = segment else {
        problems.add("segment", "REQUIRED", "a segment is required");
        return SegmentInput {
            problems,
            ..SegmentInput::default()
        };
    };
    let rule = s
        .rule
        .as_ref()
        .map(|r| rule(tenant, Some(r), "segment.rule", 1, &mut problems));
    SegmentInput {
        display_name: s.display_name.clone(),
        description: s.description.clone(),
        rule,
        reevaluation_secs: s.reevaluation_interval.map(|d| d.seconds),
        identifier_update_types: s.identifier_update_types.clone(),
        problems,
    }
}

/// A preview for the reply.
pub(super) fn preview(tenant: &str, preview: Option<Preview>) -> Option<pb::SegmentPreview> {
    preview.map(|p| pb::SegmentPreview {
        member_count: p.member_count,
        sample_persons: p
            .sample
            .iter()
            .map(|id| format!("tenants/{tenant}/persons/{id}"))
            .collect(),
        as_of_revision: p.as_of_revision,
    })
}

/// The segment and its preview as a create reply.
pub(super) fn created(tenant: &str, reply: SegmentReply) -> pb::CreateSegmentResponse {
    pb::CreateSegmentResponse {
        segment: Some(segment(tenant, &reply.segment)),
        preview: preview(tenant, reply.preview),
    }
}

/// The identifiers exported for each person (empty without any asked for).
pub(super) type Exported =
    std::collections::HashMap<uuid::Uuid, Vec<touchline_proto::common::v1::Identifier>>;

pub(super) fn encode(text: &str) -> String {
    URL_SAFE_NO_PAD.encode(text)
}

pub(super) fn decode(token: &str, prefix: &str) -> Result<String, ModelingError> {
    URL_SAFE_NO_PAD
        .decode(token)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .and_then(|text| text.strip_prefix(prefix).map(str::to_owned))
        .ok_or_else(|| {
            ModelingError::invalid(
                "page_token",
                "INVALID_PAGE_TOKEN",
                "not a token this call gave",
            )
        })
}

/// The id a segments page continues after.
pub(super) fn segments_after(token: &str) -> Result<String, ModelingError> {
    if token.is_empty() {
        Ok(String::new())
    } else {
        decode(token, "segments:")
    }
}

/// The token of the segments page after `id`.
pub(super) fn segments_token(id: &str) -> String {
    encode(&format!("segments:{id}"))
}

/// The sequence and person a members page continues after.
pub(super) fn members_after(token: &str) -> Result<Option<(i64, Uuid)>, ModelingError> {
    if token.is_empty() {
        return Ok(None);
    }
    let text = decode(token, "members:")?;
    text.split_once('/')
        .and_then(|(seq, person)| Some((seq.parse().ok()?, person.parse().ok()?)))
        .map(Some)
        .ok_or_else(|| {
            ModelingError::invalid(
                "page_token",
                "INVALID_PAGE_TOKEN",
                "not a token this call gave",
            )
        })
}

/// A members page as a reply.
pub(super) fn members_reply(
    tenant: &str,
    page: MembersPage,
    exported: &Exported,
) -> pb::ListSegmentMembersResponse {
    let next_page_token = match page.members.last() {
        Some(last) if page.more => encode(&format!(
            "members:{}/{}",
            page.as_of_sequence, last.person_id
        )),
        _ => String::new(),
    };
    pb::ListSegmentMembersResponse {
        members: page
            .members
            .iter()
            .map(|m| pb::SegmentMember {
                person: format!("tenants/{tenant}/persons/{}", m.person_id),
                person_id: m.person_id.to_string(),
                enter_time: Some(timestamp(m.entered_at)),
                identifiers: exported.get(&m.person_id).cloned().unwrap_or_default(),
            })
            .collect(),
        next_page_token,
        total_size: page.total,
        as_of_sequence: page.as_of_sequence,
    }
}

/// The sequence a changes page continues after.
pub(super) fn changes_after(token: &str, after_sequence: i64) -> Result<i64, ModelingError> {
    if token.is_empty() {
        if after_sequence < 0 {
            return Err(ModelingError::invalid(
                "after_sequence",
                "OUT_OF_RANGE",
                "a sequence is 0 or more",
            ));
        }
        return Ok(after_sequence);
    }
    decode(token, "changes:")?.parse().map_err(|_| {
        ModelingError::invalid(
            "page_token",
            "INVALID_PAGE_TOKEN",
            "not a token this call gave",
        )
    })
}

/// One change as the contract has it.
pub(super) fn change(tenant: &str, c: &StoredChange, exported: &Exported) -> pb::SegmentChange {
    pb::SegmentChange {
        sequence: c.sequence,
        segment: format!("tenants/{tenant}/segments/{}", c.segment_id),
        person: format!("tenants/{tenant}/persons/{}", c.person_id),
        person_id: c.person_id.to_string(),
        kind: i32::from(c.kind),
        reason: i32::from(c.reason),
        change_time: Some(timestamp(c.changed_at)),
        identifiers: exported.get(&c.person_id).cloned().unwrap_or_default(),
        change_id: c.change_id.to_string(),
        cause_message_id: c.cause_message_id.clone(),
    }
}

/// A changes page as a reply.
pub(super) fn changes_reply(
    tenant: &str,
    after: i64,
    page: ChangesPage,
    exported: &Exported,
) -> pb::ListSegmentChangesResponse {
    let last_sequence = page.changes.last().map_or(after, |c| c.sequence);
    pb::ListSegmentChangesResponse {
        changes: page
            .changes
            .iter()
            .map(|c| change(tenant, c, exported))
            .collect(),
        next_page_token: if page.more {
            encode(&format!("changes:{last_sequence}"))
        } else {
            String::new()
        },
        last_sequence,
        head_sequence: page.head_sequence,
    }
}

/// A page size within `default` and `max`.
pub(super) fn size(asked: i32, default: i64, max: i64) -> Result<i64, ModelingError> {
    match i64::from(asked) {
        0 => Ok(default),
        n if (1..=max).contains(&n) => Ok(n),
        _ => Err(ModelingError::invalid(
            "page_size",
            "OUT_OF_RANGE",
            format!("from 0 to {max}"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segment_names_split_into_tenant_and_id() {
        assert_eq!(
            segment_name("tenants/acme/segments/vip"),
            Some(("tenants/acme", "vip"))
        );
        assert_eq!(segment_name("tenants/acme/segments/"), None);
        assert_eq!(segment_name("tenants//segments/vip"), None);
        assert_eq!(segment_name("tenants/acme/segments/a/b"), None);
        assert_eq!(segment_name("acme/segments/vip"), None);
    }

    #[test]
    fn tokens_round_trip_and_foreign_ones_are_refused() {
        let token = segments_token("vip");
        assert_eq!(segments_after(&token).ok(), Some("vip".to_owned()));
        assert!(members_after(&token).is_err());
        assert!(changes_after("garbage", 0).is_err());
        assert!(changes_after("", -1).is_err());
    }
}
