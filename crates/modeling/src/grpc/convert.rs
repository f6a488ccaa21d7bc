//! Conversions between the service layer's types and the contract's.

use prost::Message as _;
use touchline_proto::governance::v1::CleanEvent;
use touchline_proto::modeling::v1 as pb;

use super::journeys::timestamp;
use crate::domain;
use crate::service::{AtPosition, EventCounts, ReplayOutcome, ReplayResult};
use crate::store::dead_letters::StoredDeadLetter;
use crate::store::{Counts, StoredEvent};

fn rows(counts: Counts) -> Vec<pb::EventCount> {
    counts
        .into_iter()
        .map(|(key, events, persons)| pb::EventCount {
            key,
            events,
            persons,
        })
        .collect()
}

pub(super) fn counts(counts: AtPosition<EventCounts>) -> pb::CountEventsResponse {
    pb::CountEventsResponse {
        total_events: counts.value.total_events,
        total_persons: counts.value.total_persons,
        by_channel: rows(counts.value.by_channel),
        by_event: rows(counts.value.by_event),
        clean_sequence: counts.clean_sequence,
    }
}

pub(super) fn events(page: AtPosition<Vec<StoredEvent>>, limit: i64) -> pb::ListEventsResponse {
    let next_page_token = domain::next_token(
        page.value.last().map(|e| e.sequence),
        page.value.len(),
        limit,
    );
    let events = page
        .value
        .into_iter()
        .map(|e| pb::StoredEvent {
            properties: CleanEvent::decode(e.payload.as_slice())
                .ok()
                .and_then(|c| c.properties),
            message_id: e.message_id,
            person_id: e.person_id.map(|p| p.to_string()).unwrap_or_default(),
            event_name: e.event_name,
            channel: e.channel,
            event_time: Some(timestamp(e.event_time)),
            sequence: e.sequence,
        })
        .collect();
    pb::ListEventsResponse {
        events,
        next_page_token,
        clean_sequence: page.clean_sequence,
    }
}

pub(super) fn dead_letters(
    letters: Vec<StoredDeadLetter>,
    limit: i64,
) -> pb::ListDeadLettersResponse {
    let next_page_token =
        domain::next_token(letters.last().map(|l| l.sequence), letters.len(), limit);
    let dead_letters = letters
        .into_iter()
        .map(|l| pb::DeadLetter {
            event_name: CleanEvent::decode(l.payload.as_slice())
                .map(|c| c.event_name)
                .unwrap_or_default(),
            sequence: l.sequence,
            message_id: l.message_id,
            reason: l.reason,
            detail: l.detail,
            set_aside_time: Some(timestamp(l.set_aside_at)),
        })
        .collect();
    pb::ListDeadLettersResponse {
        dead_letters,
        next_page_token,
    }
}

pub(super) fn replay(results: Vec<ReplayResult>) -> pb::ReplayDeadLettersResponse {
    let count = |outcome: ReplayOutcome| {
        i32::try_from(results.iter().filter(|r| r.outcome == outcome).count()).unwrap_or(i32::MAX)
    };
    pb::ReplayDeadLettersResponse {
        stored_count: count(ReplayOutcome::Stored),
        set_aside_count: count(ReplayOutcome::SetAside),
        dropped_count: count(ReplayOutcome::Dropped),
        results: results
            .into_iter()
            .map(|r| pb::DeadLetterReplay {
                sequence: r.sequence,
                outcome: match r.outcome {
                    ReplayOutcome::Stored => pb::DeadLetterOutcome::Stored,
                    ReplayOutcome::SetAside => pb::DeadLetterOutcome::SetAside,
                    ReplayOutcome::Dropped => pb::DeadLetterOutcome::Dropped,
                } as i32,
                reason: r.reason,
            })
            .collect(),
    }
}
