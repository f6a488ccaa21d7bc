//! Which of a destination's triggers travel together and which wait for which, without I/O:
//! how new triggers are split into batches (one lane per batch for per-person order), and
//! which frozen batches may be sent now given the ones in flight.
//!
//! - Sequence order: one lane; a batch goes once every batch before it is acknowledged.
//! - Per person: a person always falls in the same lane, so batches of different lanes share
//!   no person; within a lane a batch goes once every batch before it is acknowledged.
//! - Unordered: any batch that is due goes.
//!
//! A batch answered 2xx whose attempt is still being written counts as acknowledged: the next
//! one may go (if the write then fails, the first is sent again with the same id, which a
//! receiver deduplicating on `webhook-id` takes once).

use std::collections::{BTreeMap, HashSet};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::store::activation::{PER_PERSON, UNORDERED};

/// How far a frozen batch has come in this task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Progress {
    /// Not being sent; goes when it is due and nothing it waits for is pending.
    Waiting,
    /// Being sent.
    InFlight,
    /// Answered; the attempt is being written into the ledger.
    Answered {
        /// The endpoint acknowledged it.
        delivered: bool,
    },
}

/// What dispatch needs to know of a frozen batch.
#[derive(Debug, Clone, Copy)]
pub(super) struct Slot {
    /// Its lane (0 unless per person).
    pub lane: i32,
    /// When its next attempt is due.
    pub due: DateTime<Utc>,
    /// Where it stands.
    pub progress: Progress,
}

/// The lane of `person` among `lanes`; stable, so a person's triggers always share one.
pub(super) fn lane_of(person: Uuid, lanes: i32) -> i32 {
    let lanes = u64::try_from(lanes.max(1)).unwrap_or(1);
    let (high, low) = person.as_u64_pair();
    // Mixed: ids made in the same millisecond share their high half and differ in a few bits
    // of the low one, which must still spread them over the lanes.
    i32::try_from(mix(high ^ mix(low)) % lanes).unwrap_or(0)
}

/// SplitMix64's finaliser: every input bit moves about half of the output bits.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

/// Splits triggers (in sequence order, each given by its person) into batches of at most
/// `size`: the indexes of each batch's triggers with its lane, batches ordered by their first
/// trigger. Per person, one lane per person hash among `lanes`; otherwise runs of `size`.
pub(super) fn split(
    persons: &[Uuid],
    ordering: i16,
    lanes: i32,
    size: usize,
) -> Vec<(i32, Vec<usize>)> {
    let size = size.max(1);
    if ordering != PER_PERSON {
        return (0..persons.len())
            .collect::<Vec<_>>()
            .chunks(size)
            .map(|chunk| (0, chunk.to_vec()))
            .collect();
    }
    let mut open: BTreeMap<i32, Vec<usize>> = BTreeMap::new();
    let mut batches: Vec<(i32, Vec<usize>)> = Vec::new();
    for (index, person) in persons.iter().enumerate() {
        let lane = lane_of(*person, lanes);
        let batch = open.entry(lane).or_default();
        batch.push(index);
        if batch.len() == size {
            batches.push((lane, std::mem::take(batch)));
        }
    }
    batches.extend(open.into_iter().filter(|(_, b)| !b.is_empty()));
    batches.sort_by_key(|(_, batch)| batch.first().copied().unwrap_or(usize::MAX));
    batches
}

/// The first sequences of the batches that may be sent now, oldest first, at most `room`;
/// `slots` by first sequence, ascending.
pub(super) fn ready(
    ordering: i16,
    slots: impl IntoIterator<Item = (i64, Slot)>,
    now: DateTime<Utc>,
    room: usize,
) -> Vec<i64> {
    let mut ready = Vec::new();
    let mut held: HashSet<i32> = HashSet::new();
    for (first, slot) in slots {
        if ready.len() >= room {
            break;
        }
        if ordering == UNORDERED {
            if slot.progress == Progress::Waiting && slot.due <= now {
                ready.push(first);
            }
            continue;
        }
        // Sequence order is one lane, whatever a batch was frozen with.
        let lane = if ordering == PER_PERSON { slot.lane } else { 0 };
        if held.contains(&lane) {
            continue;
        }
        match slot.progress {
            Progress::Answered { delivered: true } => {}
            Progress::Waiting if slot.due <= now => {
                ready.push(first);
                held.insert(lane);
            }
            _ => {
                held.insert(lane);
            }
        }
    }
    ready
}

/// How many batches are moving: neither awaiting a retry nor queued behind one in their lane.
/// The window of batches frozen ahead counts these, so batches awaiting a retry do not stop the
/// rest (up to the bound on everything frozen).
pub(super) fn moving(
    ordering: i16,
    slots: impl IntoIterator<Item = (i64, Slot)>,
    now: DateTime<Utc>,
) -> usize {
    let mut stuck: HashSet<i32> = HashSet::new();
    let mut moving = 0;
    for (_, slot) in slots {
        let retrying = slot.progress == Progress::Waiting && slot.due > now;
        if ordering == UNORDERED {
            moving += usize::from(!retrying);
            continue;
        }
        let lane = if ordering == PER_PERSON { slot.lane } else { 0 };
        if retrying {
            stuck.insert(lane);
        } else if !stuck.contains(&lane) {
            moving += 1;
        }
    }
    moving
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::activation::SEQUENCE;
    use proptest::prelude::*;

    fn pairs(slots: &BTreeMap<i64, Slot>) -> impl Iterator<Item = (i64, Slot)> + '_ {
        slots.iter().map(|(first, slot)| (*first, *slot))
    }

    fn slot(lane: i32, progress: Progress) -> Slot {
        Slot {
            lane,
            due: DateTime::<Utc>::MIN_UTC,
            progress,
        }
    }

    #[test]
    fn sequence_order_sends_one_batch_after_the_acknowledged_ones() {
        let now = Utc::now();
        let mut slots = BTreeMap::from([
            (1, slot(0, Progress::Answered { delivered: true })),
            (5, slot(0, Progress::Waiting)),
            (9, slot(0, Progress::Waiting)),
        ]);
        assert_eq!(ready(SEQUENCE, pairs(&slots), now, 10), vec![5]);
        slots.insert(5, slot(0, Progress::InFlight));
        assert!(ready(SEQUENCE, pairs(&slots), now, 10).is_empty());
        slots.insert(5, slot(0, Progress::Answered { delivered: false }));
        assert!(ready(SEQUENCE, pairs(&slots), now, 10).is_empty());
    }

    #[test]
    fn a_failed_batch_holds_its_lane_only_and_unordered_nothing() {
        let now = Utc::now();
        let later = now + chrono::Duration::seconds(60);
        let slots = BTreeMap::from([
            (
                1,
                Slot {
                    lane: 0,
                    due: later,
                    progress: Progress::Waiting,
                },
            ),
            (2, slot(1, Progress::Waiting)),
            (3, slot(0, Progress::Waiting)),
            (4, slot(1, Progress::Waiting)),
            (5, slot(2, Progress::Waiting)),
        ]);
        assert_eq!(ready(PER_PERSON, pairs(&slots), now, 10), vec![2, 5]);
        assert_eq!(ready(UNORDERED, pairs(&slots), now, 10), vec![2, 3, 4, 5]);
        assert_eq!(ready(UNORDERED, pairs(&slots), now, 2), vec![2, 3]);
        assert!(ready(SEQUENCE, pairs(&slots), now, 10).is_empty());
    }

    #[test]
    fn batches_awaiting_a_retry_and_those_behind_them_are_not_moving() {
        let now = Utc::now();
        let retrying = Slot {
            lane: 1,
            due: now + chrono::Duration::seconds(60),
            progress: Progress::Waiting,
        };
        let slots = BTreeMap::from([
            (1, slot(0, Progress::InFlight)),
            (2, retrying),
            (3, slot(1, Progress::Waiting)),
            (4, slot(0, Progress::Waiting)),
            (5, slot(2, Progress::Answered { delivered: true })),
        ]);
        assert_eq!(moving(PER_PERSON, pairs(&slots), now), 3);
        assert_eq!(moving(UNORDERED, pairs(&slots), now), 4);
        assert_eq!(moving(SEQUENCE, pairs(&slots), now), 1);
    }

    #[test]
    fn persons_made_in_one_millisecond_spread_over_the_lanes() {
        // Time-ordered ids of one instant differ only in their counter and random bits.
        let base = 0x01a2_4529_872c_71be_9c44_9b70_21c8_d39f_u128;
        let mut counts = [0usize; 4];
        for n in 0..1_000u128 {
            let lane = lane_of(Uuid::from_u128(base + (n << 48) + n * 0x1_0000_0001), 4);
            counts[usize::try_from(lane).unwrap_or(0)] += 1;
        }
        assert!(counts.iter().all(|c| *c > 180), "{counts:?}");
        // Twelve persons one test run made in one instant (a weaker hash put all in one lane).
        let run: std::collections::HashSet<i32> = [
            "9b7021c8d39f",
            "9b713a148ed4",
            "9b7201095c2f",
            "9b73989c0026",
            "9b749b9fa6ae",
            "9b753b93c605",
            "9b762c00b677",
            "9b77e2c0ba05",
            "9b7811e1d4f5",
            "9b7948208f4d",
            "9b7a22f86ec0",
            "9b7b26814051",
        ]
        .iter()
        .filter_map(|tail| Uuid::parse_str(&format!("01a24529-872c-71be-9c44-{tail}")).ok())
        .map(|person| lane_of(person, 4))
        .collect();
        assert!(run.len() >= 3, "{run:?}");
        // The same person, the same lane.
        let person = Uuid::from_u128(base);
        assert_eq!(lane_of(person, 16), lane_of(person, 16));
    }

    #[test]
    fn split_keeps_a_person_in_one_lane_and_batches_in_order() {
        let persons: Vec<Uuid> = (0..40).map(|n| Uuid::from_u128(n % 7)).collect();
        let batches = split(&persons, PER_PERSON, 3, 4);
        let mut lane_of_person = std::collections::HashMap::new();
        let mut seen = Vec::new();
        for (lane, batch) in &batches {
            assert!(batch.len() <= 4 && !batch.is_empty());
            assert!(batch.windows(2).all(|w| w[0] < w[1]));
            for index in batch {
                assert_eq!(
                    *lane_of_person.entry(persons[*index]).or_insert(*lane),
                    *lane
                );
                seen.push(*index);
            }
        }
        assert!(batches.windows(2).all(|w| w[0].1[0] < w[1].1[0]));
        seen.sort_unstable();
        assert_eq!(seen, (0..40).collect::<Vec<_>>());
        let runs = split(&persons, SEQUENCE, 3, 16);
        assert_eq!(runs.len(), 3);
        assert_eq!(runs[2].1, (32..40).collect::<Vec<_>>());
    }

    /// One step of an endpoint's life: which answer the next finished attempt gets.
    #[derive(Debug, Clone, Copy)]
    enum Answer {
        Delivered,
        Failed,
    }

    /// Runs dispatch against an endpoint that answers in a random order (any batch in flight
    /// may finish first) with random failures, and returns the triggers as the endpoint first
    /// acknowledged them, with the most batches ever in flight at once.
    fn simulate(
        persons: &[Uuid],
        ordering: i16,
        lanes: i32,
        size: usize,
        picks: &[(usize, Answer)],
    ) -> (Vec<usize>, usize) {
        let batches = split(persons, ordering, lanes, size);
        let mut slots: BTreeMap<i64, Slot> = batches
            .iter()
            .map(|(lane, batch)| {
                (
                    i64::try_from(batch[0]).unwrap_or_default(),
                    slot(*lane, Progress::Waiting),
                )
            })
            .collect();
        let members: BTreeMap<i64, &Vec<usize>> = batches
            .iter()
            .map(|(_, batch)| (i64::try_from(batch[0]).unwrap_or_default(), batch))
            .collect();
        let capacity = usize::try_from(lanes).unwrap_or(1);
        let now = Utc::now();
        let mut acknowledged = Vec::new();
        let mut flying: Vec<i64> = Vec::new();
        let mut most = 0;
        let mut step = 0;
        loop {
            for first in ready(ordering, pairs(&slots), now, capacity - flying.len()) {
                slots
                    .entry(first)
                    .and_modify(|s| s.progress = Progress::InFlight);
                flying.push(first);
            }
            most = most.max(flying.len());
            if flying.is_empty() {
                break;
            }
            // The endpoint answers one of the batches in flight (failures run out, so it ends).
            let (pick, answer) = picks.get(step).copied().unwrap_or((0, Answer::Delivered));
            step += 1;
            let first = flying.remove(pick % flying.len());
            match answer {
                Answer::Delivered => {
                    acknowledged.extend(members[&first].iter().copied());
                    slots.remove(&first);
                }
                Answer::Failed => {
                    slots
                        .entry(first)
                        .and_modify(|s| s.progress = Progress::Waiting);
                }
            }
        }
        assert!(slots.is_empty(), "every batch is delivered in the end");
        (acknowledged, most)
    }

    fn answers() -> impl Strategy<Value = Vec<(usize, Answer)>> {
        prop::collection::vec(
            (
                0usize..16,
                prop_oneof![3 => Just(Answer::Delivered), 1 => Just(Answer::Failed)],
            ),
            0..200,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2_000))]

        /// Against the plain definition of each ordering: every trigger is acknowledged once;
        /// sequence order acknowledges in sequence; per person, each person's triggers come in
        /// sequence; never more in flight than allowed.
        #[test]
        fn dispatch_keeps_each_orderings_promise(
            people in prop::collection::vec(0u128..12, 1..120),
            ordering in prop_oneof![Just(SEQUENCE), Just(PER_PERSON), Just(UNORDERED)],
            lanes in 1i32..6,
            size in 1usize..9,
            picks in answers(),
        ) {
            let persons: Vec<Uuid> = people.iter().map(|p| Uuid::from_u128(p.wrapping_mul(0x9e37_79b9_7f4a_7c15))).collect();
            let lanes = if ordering == SEQUENCE { 1 } else { lanes };
            let (acknowledged, most) = simulate(&persons, ordering, lanes, size, &picks);
            let mut each = acknowledged.clone();
            each.sort_unstable();
            prop_assert_eq!(each, (0..persons.len()).collect::<Vec<_>>());
            prop_assert!(most <= usize::try_from(lanes).unwrap_or(1));
            if ordering == SEQUENCE {
                prop_assert!(acknowledged.windows(2).all(|w| w[0] < w[1]));
            }
            if ordering == PER_PERSON {
                let mut last: std::collections::HashMap<Uuid, usize> = std::collections::HashMap::new();
                for index in acknowledged {
                    let before = last.insert(persons[index], index);
                    prop_assert!(before.is_none_or(|b| b < index), "a person's trigger {index} came after a later one");
                }
            }
        }
    }
}
