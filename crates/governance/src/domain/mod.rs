//! Governance's domain: plain Rust, no gRPC and no SQL.
//!
//! `dictionary` holds the tenant's canonical events, `source` the settings
//! of a registered source, `timestamp`, `pii` and `mapping` the individual
//! normalisations, `natural_key` the cross-source record identity, and
//! `clean` puts them together into the one cleaning function; `diff`
//! compares two cleanings of one event.

pub mod clean;
pub mod dictionary;
pub mod diff;
pub mod ids;
pub mod mapping;
pub mod natural_key;
pub mod pii;
pub mod pii_scan;
pub mod privacy;
pub mod source;
pub mod timestamp;
pub mod value;
