//! Rows in PostgreSQL's binary COPY format, for the raw log's fast append
//! path. Only the four column types the raw log needs are written; the
//! layout (signature, flags, per-tuple field count, length-prefixed
//! big-endian values, trailer) is the one `COPY ... (FORMAT binary)` reads.

use chrono::{DateTime, Utc};

/// The fixed 11-byte signature, then the flags field and the header
/// extension length (both zero).
const HEADER: &[u8] = b"PGCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0";
/// A field count of -1 ends the data.
const TRAILER: [u8; 2] = (-1_i16).to_be_bytes();
/// Microseconds from the Unix epoch to PostgreSQL's epoch (2000-01-01 UTC).
const PG_EPOCH_OFFSET_US: i64 = 946_684_800_000_000;

/// A COPY body under construction: the header is written on creation and
/// the trailer by [`CopyRows::finish`].
#[derive(Debug)]
pub struct CopyRows {
    buf: Vec<u8>,
}

/// Why a value cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CopyError {
    /// A value longer than a COPY field can hold (2 GiB − 1 bytes).
    #[error("a value of {0} bytes is too long for one field")]
    TooLong(usize),
    /// A tuple with more fields than a table can have.
    #[error("a tuple of {0} fields is too wide")]
    TooWide(usize),
}

impl CopyRows {
    /// An empty body with room for about `bytes` of data.
    pub fn with_capacity(bytes: usize) -> Self {
        let mut buf = Vec::with_capacity(bytes + HEADER.len() + TRAILER.len());
        buf.extend_from_slice(HEADER);
        Self { buf }
    }

    /// Starts a tuple of `fields` values; exactly that many must follow.
    pub fn tuple(&mut self, fields: usize) -> Result<&mut Self, CopyError> {
        let count = i16::try_from(fields).map_err(|_| CopyError::TooWide(fields))?;
        self.buf.extend_from_slice(&count.to_be_bytes());
        Ok(self)
    }

    /// A `text` (or `bytea`) value: its bytes as they are.
    pub fn bytes(&mut self, value: &[u8]) -> Result<&mut Self, CopyError> {
        let len = i32::try_from(value.len()).map_err(|_| CopyError::TooLong(value.len()))?;
        self.buf.extend_from_slice(&len.to_be_bytes());
        self.buf.extend_from_slice(value);
        Ok(self)
    }

    /// A `text` value.
    pub fn text(&mut self, value: &str) -> Result<&mut Self, CopyError> {
        self.bytes(value.as_bytes())
    }

    /// A nullable `text` value.
    pub fn text_or_null(&mut self, value: Option<&str>) -> Result<&mut Self, CopyError> {
        match value {
            Some(value) => self.text(value),
            None => {
                self.buf.extend_from_slice(&(-1_i32).to_be_bytes());
                Ok(self)
            }
        }
    }

    /// A `bigint` value.
    pub fn bigint(&mut self, value: i64) -> &mut Self {
        self.buf.extend_from_slice(&8_i32.to_be_bytes());
        self.buf.extend_from_slice(&value.to_be_bytes());
        self
    }

    /// A `timestamptz` value (microsecond precision, as PostgreSQL stores it).
    pub fn timestamptz(&mut self, value: DateTime<Utc>) -> &mut Self {
        self.bigint(value.timestamp_micros() - PG_EPOCH_OFFSET_US)
    }

    /// The finished body.
    pub fn finish(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(&TRAILER);
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_body_is_header_and_trailer() {
        let body = CopyRows::with_capacity(0).finish();
        assert_eq!(&body[..11], b"PGCOPY\n\xff\r\n\0");
        assert_eq!(body.len(), 19 + 2);
        assert_eq!(&body[19..], &[0xff, 0xff]);
    }

    #[test]
    fn fields_are_length_prefixed_and_big_endian() -> Result<(), CopyError> {
        let mut rows = CopyRows::with_capacity(64);
        rows.tuple(3)?.text("ab")?.bigint(258).text_or_null(None)?;
        let body = rows.finish();
        let tuple = &body[19..body.len() - 2];
        let expected: Vec<u8> = [
            &[0, 3][..],
            &[0, 0, 0, 2, b'a', b'b'],
            &[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 1, 2],
            &[0xff, 0xff, 0xff, 0xff],
        ]
        .concat();
        assert_eq!(tuple, expected.as_slice());
        Ok(())
    }

    #[test]
    fn timestamps_count_from_the_postgres_epoch() {
        let mut rows = CopyRows::with_capacity(16);
        let pg_epoch = DateTime::from_timestamp(946_684_800, 1_000).unwrap_or_default();
        rows.timestamptz(pg_epoch);
        let body = rows.finish();
        assert_eq!(&body[19..31], &[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 1]);
    }

    #[test]
    fn an_over_wide_tuple_is_refused() {
        let mut rows = CopyRows::with_capacity(0);
        assert_eq!(rows.tuple(40_000).err(), Some(CopyError::TooWide(40_000)));
    }
}
