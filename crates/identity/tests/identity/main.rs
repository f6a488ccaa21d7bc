//! Integration tests of the identity service against real PostgreSQL and
//! Redis: each test gets a fresh database and its own Redis key prefix.
#![allow(
    clippy::too_many_lines,
    reason = "scenario tests read top to bottom, one step after another"
)]

mod announce;
mod cache;
mod changes;
mod clear;
mod erasure;
mod helpers;
mod precision;
mod reassign;
mod requests;
mod resolve;
mod rules;
mod simdata;
mod stress;
mod timeline;
