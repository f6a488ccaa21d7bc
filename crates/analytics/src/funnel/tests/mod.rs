//! Tests of the funnel model: PostHog's scenarios, edge cases, and the fast evaluator
//! against a naive reference on random timelines.

#![allow(clippy::unwrap_used, reason = "tests")]
#![allow(clippy::expect_used, reason = "tests")]

mod edges;
mod forward;
mod properties;
mod reference;
mod scenarios_exclusions;
mod scenarios_ordered;
mod scenarios_other;
mod support;
