//! Text ↔ small integer codes, one dictionary per column, and sets of codes for filters.
//!
//! Events store codes, never text: a channel name repeated ten million times costs two bytes
//! an event instead of its length, and the journey models compare integers. Code 0 is always
//! the empty string, which the models read as "missing" (the funnel's `MISSING_VALUE`), so a
//! column without a value needs no separate flag. Codes are handed out in first-seen order and
//! never reused, so a code stays valid for the projection's lifetime; a rebuild may number
//! differently, which is why codes never leave the process (replies carry text).

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::ProjectionError;

/// The code of the empty string (a missing value) in every dictionary.
pub const MISSING: u32 = 0;

/// One column's texts and their codes.
#[derive(Clone, Debug)]
pub struct Dictionary {
    column: &'static str,
    limit: usize,
    texts: Vec<Arc<str>>,
    index: HashMap<Arc<str>, u32>,
}

impl Dictionary {
    /// An empty dictionary (the empty string only) for `column`, holding at most `limit` codes.
    pub fn new(column: &'static str, limit: usize) -> Self {
        let empty: Arc<str> = Arc::from("");
        Self {
            column,
            limit: limit.max(1),
            texts: vec![Arc::clone(&empty)],
            index: HashMap::from([(empty, MISSING)]),
        }
    }

    /// The column this dictionary encodes.
    pub fn column(&self) -> &'static str {
        self.column
    }

    /// The code of `text`, handing out the next one when it is new.
    pub fn intern(&mut self, text: &str) -> Result<u32, ProjectionError> {
        if let Some(&code) = self.index.get(text) {
            return Ok(code);
        }
        if self.texts.len() >= self.limit {
            return Err(ProjectionError::DictionaryFull {
                column: self.column,
                limit: self.limit,
            });
        }
        let code = self.texts.len() as u32;
        let shared: Arc<str> = Arc::from(text);
        self.texts.push(Arc::clone(&shared));
        self.index.insert(shared, code);
        Ok(code)
    }

    /// The code of `text` if it has one (a filter on an unseen value matches nothing).
    pub fn code(&self, text: &str) -> Option<u32> {
        self.index.get(text).copied()
    }

    /// The text of `code`.
    pub fn text(&self, code: u32) -> Option<&str> {
        self.texts.get(code as usize).map(|text| &**text)
    }

    /// Number of codes, the empty string included: codes run from 0 to `len() − 1`.
    pub fn len(&self) -> usize {
        self.texts.len()
    }

    /// Always false: the empty string is always there. Present for the usual pairing with
    /// [`Dictionary::len`].
    pub fn is_empty(&self) -> bool {
        self.texts.is_empty()
    }

    /// Whether `code` was handed out.
    pub fn contains_code(&self, code: u32) -> bool {
        (code as usize) < self.texts.len()
    }

    /// Fails unless `code` was handed out by this dictionary.
    pub(crate) fn check(&self, code: u32) -> Result<(), ProjectionError> {
        if self.contains_code(code) {
            Ok(())
        } else {
            Err(ProjectionError::UnknownCode {
                column: self.column,
                code,
            })
        }
    }

    /// The codes whose text satisfies `predicate`: how the service turns any filter on text
    /// (equals, contains, a numeric comparison on parsed text) into a set the scan tests
    /// with one bit lookup per event.
    pub fn matching(&self, predicate: impl Fn(&str) -> bool) -> CodeSet {
        let mut set = CodeSet::default();
        for (code, text) in (0u32..).zip(&self.texts) {
            if predicate(text) {
                set.insert(code);
            }
        }
        set
    }

    /// Heap bytes: the texts, their pointers and the hash index (entries × slot size; the
    /// table's control bytes and allocator overhead are not visible from here).
    pub fn heap_bytes(&self) -> usize {
        let texts: usize = self.texts.iter().map(|t| t.len() + 16).sum();
        let slot = size_of::<(Arc<str>, u32)>() + 1;
        texts + self.texts.capacity() * size_of::<Arc<str>>() + self.index.capacity() * slot
    }
}

/// A set of codes of one dictionary, as a bitset.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CodeSet {
    words: Vec<u64>,
}

impl CodeSet {
    /// The set of the given codes.
    pub fn of(codes: impl IntoIterator<Item = u32>) -> Self {
        let mut set = Self::default();
        for code in codes {
            set.insert(code);
        }
        set
    }

    /// Adds `code`.
    pub fn insert(&mut self, code: u32) {
        let word = code as usize / 64;
        if self.words.len() <= word {
            self.words.resize(word + 1, 0);
        }
        self.words[word] |= 1 << (code % 64);
    }

    /// Whether `code` is in the set.
    #[inline]
    pub fn contains(&self, code: u32) -> bool {
        self.words
            .get(code as usize / 64)
            .is_some_and(|word| word & (1 << (code % 64)) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_empty_string_is_code_zero_and_codes_follow_first_sight() {
        let mut channels = Dictionary::new("channel", 4);
        assert_eq!(channels.intern(""), Ok(MISSING));
        assert_eq!(channels.intern("wechat"), Ok(1));
        assert_eq!(channels.intern("store"), Ok(2));
        assert_eq!(channels.intern("wechat"), Ok(1));
        assert_eq!(channels.text(2), Some("store"));
        assert_eq!(channels.code("app"), None);
        assert_eq!(channels.len(), 3);
    }

    #[test]
    fn a_full_dictionary_refuses_new_texts_but_keeps_old_ones() {
        let mut sources = Dictionary::new("source", 2);
        assert_eq!(sources.intern("pos"), Ok(1));
        assert_eq!(
            sources.intern("crm"),
            Err(ProjectionError::DictionaryFull {
                column: "source",
                limit: 2
            })
        );
        assert_eq!(sources.intern("pos"), Ok(1));
    }

    #[test]
    fn matching_turns_a_text_predicate_into_a_code_set() {
        let mut cities = Dictionary::new("city", 10);
        for city in ["Shanghai", "Shenzhen", "Beijing"] {
            cities.intern(city).ok();
        }
        let set = cities.matching(|text| text.starts_with("Sh"));
        assert!(set.contains(1) && set.contains(2));
        assert!(!set.contains(0) && !set.contains(3) && !set.contains(500));
        assert_eq!(CodeSet::of([1, 2]), set);
    }
}
