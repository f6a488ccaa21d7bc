//! Governance's domain: plain Rust, no gRPC and no SQL.
//!
//! `dictionary` holds the tenant's canonical events, `source` the settings
//! of a registered source, `timestamp`, `pii` and `mapping` the individual
//! normalisations, `ad_clicks` the traffic source a landing URL or an ad click id names,
//! `natural_key` the cross-source record identity, and
//! `clean` puts them together into the one cleaning function; `diff`
//! compares two cleanings of one event.
//!
//! The request rules of the service live here too: `names` (resource names),
//! `pages` (page sizes and tokens), `field_mask` (what an update may change),
//! `versions` (what a publish changes) and `ranges` (the time ranges a report or a
//! reprocess job may cover).

pub mod ad_clicks;
pub mod clean;
pub mod client_time;
pub mod dictionary;
pub mod diff;
pub mod field_mask;
pub mod ids;
pub mod mapping;
pub mod names;
pub mod natural_key;
pub mod pages;
pub mod pii;
pub mod pii_scan;
pub mod privacy;
pub mod ranges;
pub mod source;
pub mod timestamp;
pub mod value;
pub mod versions;
