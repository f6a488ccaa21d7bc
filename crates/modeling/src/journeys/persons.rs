//! Person ids as the projection's integer keys.
//!
//! Keys are handed out densely in the order persons are first seen. They are local to one
//! process and one build of the projection: nothing outside this process ever sees a key,
//! only the person id it stands for, so results never depend on the order keys were given.

use std::collections::HashMap;

use uuid::Uuid;

/// The two-way map between person ids and projection keys.
#[derive(Debug, Default, Clone)]
pub struct PersonKeys {
    keys: HashMap<Uuid, u64>,
    ids: Vec<Uuid>,
}

impl PersonKeys {
    /// The key of `id`, handing out the next one for a new person.
    pub fn key(&mut self, id: Uuid) -> u64 {
        let next = self.ids.len() as u64;
        let key = *self.keys.entry(id).or_insert(next);
        if key == next {
            self.ids.push(id);
        }
        key
    }

    /// The key of `id` if it has one.
    pub fn get(&self, id: &Uuid) -> Option<u64> {
        self.keys.get(id).copied()
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

    /// Heap bytes of both directions (entries and slots; allocator overhead not counted).
    pub fn heap_bytes(&self) -> usize {
        self.ids.capacity() * size_of::<Uuid>()
            + self.keys.capacity() * (size_of::<(Uuid, u64)>() + 1)
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
}
