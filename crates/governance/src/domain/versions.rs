//! Publishing a draft: what it changes since the active version, and the etag that tells a
//! publisher whether the draft is still the one it reviewed.

use chrono::{DateTime, Utc};

use super::dictionary::Dictionary;

/// A canonical event added in the new version (the contract's change kind).
pub const ADDED: i32 = 1;
/// A canonical event changed in the new version.
pub const CHANGED: i32 = 2;
/// A canonical event deprecated in the new version.
pub const DEPRECATED: i32 = 3;

/// Each event of `next` that differs from `previous`, with its change kind.
pub fn changes_since(previous: &Dictionary, next: &Dictionary) -> Vec<(String, i32)> {
    let mut changes = Vec::new();
    for (name, def) in &next.events {
        match previous.events.get(name) {
            None => changes.push((name.clone(), ADDED)),
            Some(old) if old != def && def.deprecated && !old.deprecated => {
                changes.push((name.clone(), DEPRECATED));
            }
            Some(old) if old != def => changes.push((name.clone(), CHANGED)),
            Some(_) => {}
        }
    }
    changes
}

/// The draft's etag: its size and its newest change, so any write to it changes the tag.
pub fn draft_etag(updated: impl ExactSizeIterator<Item = DateTime<Utc>>) -> String {
    let count = updated.len();
    let latest = updated.map(|t| t.timestamp_micros()).max().unwrap_or(0);
    format!("{count}-{latest}")
}
