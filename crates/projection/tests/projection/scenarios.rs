//! Named cases: late events, identity changes across partitions, refused input, the loader.

use touchline_projection::{
    Event, MAX_TIME_MS, NewEvent, Projection, ProjectionConfig, ProjectionError, Touch,
    partition_of,
};

use crate::support::{BASE_MS, HOUR_MS, Reference, projection};

fn event(person: u64, hour: i64, seq: u64, code: u32) -> NewEvent {
    NewEvent {
        person,
        event: Event {
            time_ms: BASE_MS + hour * HOUR_MS,
            seq,
            event: code,
            touch: Touch {
                channel: 1,
                ..Touch::default()
            },
            value: (code == 2).then_some(129.5),
            properties: [1, 0, 0, 0],
        },
    }
}

fn times(projection: &Projection, person: u64) -> Vec<(i64, u64)> {
    projection
        .timeline(person)
        .iter()
        .map(|e| ((e.time_ms - BASE_MS) / HOUR_MS, e.seq))
        .collect()
}

/// Two persons that live in different partitions of a 3-partition projection.
fn persons_in_two_partitions() -> (u64, u64) {
    let first = 1;
    let other = (2..).find(|&p| partition_of(p, 3) != partition_of(first, 3));
    (first, other.unwrap_or(2))
}

#[test]
fn a_late_event_takes_its_place_in_time() {
    let mut projection = projection();
    let batch: Vec<_> = (0..20).map(|i| event(7, i, i as u64 + 1, 1)).collect();
    projection.append(&batch).expect("valid");
    projection.append(&[event(7, 3, 100, 2)]).expect("valid");
    projection.append(&[event(7, 3, 50, 3)]).expect("valid");
    let timeline = times(&projection, 7);
    assert_eq!(timeline[3..6], [(3, 4), (3, 50), (3, 100)]);
    assert_eq!(timeline.len(), 22);
    let late = projection.timeline(7)[5];
    assert_eq!((late.value, late.properties[0]), (Some(129.5), 1));
}

#[test]
fn a_merge_across_partitions_interleaves_both_timelines() {
    let (survivor, absorbed) = persons_in_two_partitions();
    let mut projection = projection();
    projection
        .append(&[event(survivor, 0, 1, 1), event(survivor, 4, 2, 1)])
        .expect("valid");
    projection
        .append(&[event(absorbed, 2, 3, 2), event(absorbed, 6, 4, 3)])
        .expect("valid");
    projection.compact_all(1);
    assert_eq!(projection.merge(survivor, absorbed), 2);
    assert_eq!(
        times(&projection, survivor),
        [(0, 1), (2, 3), (4, 2), (6, 4)]
    );
    assert!(projection.timeline(absorbed).is_empty());
    assert_eq!(projection.events(), 4);
    projection.compact_all(1);
    assert_eq!(projection.memory().removed_bytes, 0);
    assert_eq!(projection.timeline(survivor)[1].value, Some(129.5));
}

#[test]
fn a_split_moves_only_the_named_events_and_an_erasure_removes_all() {
    let (person, split_off) = persons_in_two_partitions();
    let mut projection = projection();
    let batch: Vec<_> = (0..10).map(|i| event(person, i, i as u64 + 1, 1)).collect();
    projection.append(&batch).expect("valid");
    assert_eq!(projection.split(person, split_off, &[2, 4, 99]), 2);
    assert_eq!(times(&projection, split_off), [(1, 2), (3, 4)]);
    assert_eq!(times(&projection, person).len(), 8);
    assert_eq!(projection.erase(person), 8);
    assert_eq!(projection.erase(person), 0);
    assert_eq!(projection.events(), 2);
    assert_eq!(projection.remove_events(split_off, &[4]), 1);
    assert_eq!(times(&projection, split_off), [(1, 2)]);
}

#[test]
fn refused_batches_add_nothing() {
    let mut projection = projection();
    let unknown_event = event(1, 0, 2, 99);
    let result = projection.append(&[event(1, 0, 1, 1), unknown_event]);
    assert_eq!(
        result,
        Err(ProjectionError::UnknownCode {
            column: "event_name",
            code: 99
        })
    );
    let mut too_late = event(1, 0, 3, 1);
    too_late.event.time_ms = MAX_TIME_MS + 1;
    assert!(projection.append(&[too_late]).is_err());
    let mut unkept_slot = event(1, 0, 4, 1);
    unkept_slot.event.properties[3] = 1;
    assert!(projection.append(&[unkept_slot]).is_err());
    assert_eq!(projection.events(), 0);
}

#[test]
fn the_loader_builds_what_appending_builds() {
    let mut appended = projection();
    let mut reference = Reference::default();
    let mut events = Vec::new();
    for person in 0..50u64 {
        for i in 0..(person % 7 + 1) {
            events.push(event(
                person * 7919,
                (i * 5 % 11) as i64,
                person * 100 + i,
                1 + (i % 3) as u32,
            ));
        }
    }
    events.reverse();
    for chunk in events.chunks(9) {
        appended.append(chunk).expect("valid");
    }
    reference.append(&events);
    let mut loader = projection().loader(2);
    for chunk in events.chunks(13) {
        loader.push(chunk).expect("valid");
    }
    let loaded = loader.finish();
    for person in reference.persons() {
        assert_eq!(loaded.timeline(person), reference.timeline(person));
        assert_eq!(appended.timeline(person), reference.timeline(person));
    }
    let memory = loaded.memory();
    assert_eq!(memory.events, events.len());
    assert_eq!(memory.delta_events, 0);
    // Dense columns are sized exactly: 16 bytes an event.
    assert_eq!(memory.dense_bytes, 16 * events.len());
}

#[test]
fn a_bad_config_is_refused() {
    let config = ProjectionConfig {
        partitions: 0,
        ..ProjectionConfig::default()
    };
    assert!(Projection::new(config).is_err());
}

#[test]
fn a_projection_can_be_shared_between_threads() {
    fn shareable<T: Send + Sync>() {}
    shareable::<Projection>();
    shareable::<touchline_projection::Loader>();
}
