//! The journey models as pure functions over person timelines.
//!
//! What belongs here: the algorithms that answer analytic questions — funnels, paths,
//! lifecycle, retention, attribution, churn — over plain, already-decoded inputs (person
//! timelines of small integer codes, aggregated paths, purchase histories), with the exact
//! semantics written in the project's analytics definitions.
//!
//! What does not: I/O of any kind. There is no tonic, sqlx or tokio in this crate; the modeling
//! service builds the inputs from its projection and turns the outputs into replies. Keeping
//! the algorithms pure is what lets every one of them be checked against a deliberately naive
//! reference on thousands of random inputs, and against the scenarios of the tools analysts
//! already trust.
//!
//! Each module owns one model and opens with its own charter; `calendar` holds the interval
//! arithmetic (tenant time zone, week start, DST) that lifecycle and retention share.

pub mod attribution;
pub mod calendar;
pub mod churn;
pub mod funnel;
pub mod lifecycle;
pub mod paths;
pub mod retention;
