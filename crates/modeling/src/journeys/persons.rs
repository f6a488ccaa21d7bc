//! Person ids as the projection's integer keys.
//!
//! Keys are handed out densely in the order persons are first seen. They are local to one
//! process and one build of the projection: nothing outside this process ever sees a key,
//! only the person id it stands for, so results never depend on the order keys were given.
//!
//! Memory: a view of a million persons keeps this map as long as it lives, so its resting
//! form is compact — the ids by key (16 bytes a person) and the keys sorted by id for lookups
//! (4 bytes a person) — 20 bytes a person instead of the 60 or so of a hash map at its usual
//! load. A rebuild looks up every event's person, so it fills a hash map first and turns it
//! into the compact form once at the end ([`PersonKeys::compact`]); keys handed out later
//! (a catch-up's new persons) wait in a small map until it reaches an eighth of the sorted
//! keys and is merged in.

use std::collections::HashMap;

use uuid::Uuid;

/// The two-way map between person ids and projection keys.
#[derive(Debug, Default, Clone)]
pub struct PersonKeys {
    /// Id of each key.
    ids: Vec<Uuid>,
    /// Keys (as u32: a view holds far fewer than 4 billion persons) ordered by their id.
    sorted: Vec<u32>,
    /// Keys not yet in `sorted`.
    recent: HashMap<Uuid, u64>,
    /// While building, every key stays in `recent` until [`PersonKeys::compact`].
    building: bool,
}

impl PersonKeys {
    /// An empty map for a rebuild: lookups stay in a hash map until [`PersonKeys::compact`].
    pub fn building() -> Self {
        Self {
            building: true,
            ..Self::default()
        }
    }

    /// The key of `id`, handing out the next one for a new person.
    pub fn key(&mut self, id: Uuid) -> u64 {
        if let Some(key) = self.get(&id) {
            return key;
        }
        let key = self.ids.len() as u64;
        self.ids.push(id);
        self.recent.insert(id, key);
        if !self.building && self.recent.len() > (self.sorted.len() / 8).max(1_024) {
            self.merge_recent();
        }
        key
    }

    /// The key of `id` if it has one.
    pub fn get(&self, id: &Uuid) -> Option<u64> {
        if let Some(&key) = self.recent.get(id) {
            return Some(key);
        }
        let ids = &self.ids;
        self.sorted
            .binary_search_by(|&key| ids[key as usize].cmp(id))
            .ok()
            .map(|index| u64::from(self.sorted[index]))
    }

    /// The person id of `key`.
    pub fn id(&self, key: u64) -> Option<Uuid> {
        usize::try_from(key)
            .ok()
            .and_then(|k| self.ids.get(k))
            .copied()
    }

    /// Persons with a key.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// Whether no person has a key yet.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// Ends a rebuild: every key into the sorted form, the hash map freed.
    pub fn compact(&mut self) {
        self.building = false;
        self.merge_recent();
        self.recent = HashMap::new();
        self.ids.shrink_to_fit();
        self.sorted.shrink_to_fit();
    }

    /// Merges the recent keys into the sorted ones (one pass over both).
    fn merge_recent(&mut self) {
        let ids = &self.ids;
        let mut recent: Vec<u32> = self
            .recent
            .values()
            .filter_map(|&key| u32::try_from(key).ok())
            .collect();
        recent.sort_unstable_by_key(|&key| ids[key as usize]);
        let mut merged = Vec::with_capacity(self.sorted.len() + recent.len());
        let (mut old, mut new) = (self.sorted.iter().peekable(), recent.iter().peekable());
        while let (Some(&&a), Some(&&b)) = (old.peek(), new.peek()) {
            if ids[a as usize] <= ids[b as usize] {
                merged.push(a);
                old.next();
            } else {
                merged.push(b);
                new.next();
            }
        }
        merged.extend(old);
        merged.extend(new);
        self.sorted = merged;
        self.recent.clear();
    }

    /// Heap bytes (entries and slots; allocator overhead not counted).
    pub fn heap_bytes(&self) -> usize {
        self.ids.capacity() * size_of::<Uuid>()
            + self.sorted.capacity() * size_of::<u32>()
            + self.recent.capacity() * (size_of::<(Uuid, u64)>() + 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_dense_stable_and_reversible() {
        let mut keys = PersonKeys::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        assert_eq!(keys.key(a), 0);
        assert_eq!(keys.key(b), 1);
        assert_eq!(keys.key(a), 0);
        assert_eq!(keys.id(1), Some(b));
        assert_eq!(keys.get(&Uuid::nil()), None);
        assert_eq!(keys.id(2), None);
        assert_eq!(keys.len(), 2);
    }

    #[test]
    fn the_compact_form_answers_like_a_hash_map_through_builds_and_merges() {
        use rand::{Rng as _, SeedableRng as _};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
        let mut keys = PersonKeys::building();
        let mut reference: HashMap<Uuid, u64> = HashMap::new();
        let draw = |rng: &mut rand_chacha::ChaCha8Rng| Uuid::from_u128(rng.random_range(0..30_000));
        for round in 0..3 {
            for _ in 0..20_000 {
                let id = draw(&mut rng);
                let next = reference.len() as u64;
                let expected = *reference.entry(id).or_insert(next);
                assert_eq!(keys.key(id), expected, "round {round}");
            }
            if round == 0 {
                keys.compact();
            }
            for _ in 0..2_000 {
                let id = draw(&mut rng);
                assert_eq!(keys.get(&id), reference.get(&id).copied());
            }
        }
        for (id, key) in &reference {
            assert_eq!(keys.id(*key), Some(*id));
        }
        assert_eq!(keys.len(), reference.len());
    }
}
