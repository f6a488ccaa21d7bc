//! One event in row form: how recent events wait in a partition's delta and how rows move
//! between persons and partitions (merges, splits) before being written into columns.

use crate::event::{Event, MAX_PROPERTIES};

/// An event with its person, its touch as a table code, and its sort key first.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct Row {
    pub(crate) person: u64,
    pub(crate) time: i64,
    pub(crate) seq: u64,
    pub(crate) value: f64,
    pub(crate) properties: [u32; MAX_PROPERTIES],
    pub(crate) event: u16,
    pub(crate) touch: u16,
    pub(crate) has_value: bool,
}

impl Row {
    /// The order of a partition: person, then time, then sequence.
    #[inline]
    pub(crate) fn key(&self) -> (u64, i64, u64) {
        (self.person, self.time, self.seq)
    }

    /// The value, when there is one.
    #[inline]
    pub(crate) fn value(&self) -> Option<f64> {
        self.has_value.then_some(self.value)
    }

    /// A row for `person` from an already checked event and its touch code.
    pub(crate) fn new(person: u64, event: &Event, touch: u16) -> Self {
        Self {
            person,
            time: event.time_ms,
            seq: event.seq,
            value: event.value.unwrap_or(0.0),
            properties: event.properties,
            event: event.event as u16,
            touch,
            has_value: event.value.is_some(),
        }
    }
}

/// Sorts rows into partition order.
pub(crate) fn sort_rows(rows: &mut [Row]) {
    rows.sort_unstable_by_key(Row::key);
}

/// Merges the sorted `incoming` rows into the sorted `rows`, in place from the back: `rows`
/// grows by `incoming.len()` and no row is copied twice, so a batch costs one pass over the
/// rows after its first insertion point and no scratch buffer.
pub(crate) fn merge_into(rows: &mut Vec<Row>, incoming: &[Row]) {
    if incoming.is_empty() {
        return;
    }
    let mut old = rows.len();
    rows.resize(old + incoming.len(), Row::default());
    let mut new = incoming.len();
    let mut write = rows.len();
    while new > 0 {
        write -= 1;
        if old > 0 && rows[old - 1].key() > incoming[new - 1].key() {
            old -= 1;
            rows[write] = rows[old];
        } else {
            new -= 1;
            rows[write] = incoming[new];
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(person: u64, time: i64, seq: u64) -> Row {
        Row {
            person,
            time,
            seq,
            ..Row::default()
        }
    }

    #[test]
    fn a_delta_row_is_56_bytes_as_the_crate_docs_say() {
        assert_eq!(size_of::<Row>(), 56);
    }

    #[test]
    fn merging_keeps_partition_order() {
        let mut rows = vec![row(1, 5, 1), row(1, 9, 2), row(3, 1, 3)];
        let mut incoming = vec![row(3, 0, 9), row(1, 5, 0), row(2, 7, 4), row(4, 1, 5)];
        sort_rows(&mut incoming);
        merge_into(&mut rows, &incoming);
        let keys: Vec<_> = rows.iter().map(Row::key).collect();
        let mut expected = keys.clone();
        expected.sort_unstable();
        assert_eq!(keys, expected);
        assert_eq!(rows.len(), 7);
    }
}
