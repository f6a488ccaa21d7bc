//! Turning the rows of an imported file into events, without gRPC or SQL:
//! incremental splitting of CSV and JSON Lines bytes into rows, and the
//! mapping of one row to a `touchline.common.v1.Event` by the source's
//! settings.
//!
//! `decode` reads a CSV file in its declared encoding; `cut` splits bytes
//! into rows; `event` maps a row to an event.

mod cut;
mod decode;
mod event;
#[cfg(test)]
mod proptests;

pub use cut::{Cut, Layout, MAX_RAW_BYTES, MAX_ROW_BYTES, Preamble, RawRow, RowValues, cut_rows};
pub use decode::Encoding;
pub use event::{Row, message_id, row_event};
