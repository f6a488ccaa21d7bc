//! Integration tests of the identity service against real PostgreSQL and
//! Redis: each test gets a fresh database and its own Redis key prefix.

mod cache;
mod changes;
mod clear;
mod erasure;
mod helpers;
mod precision;
mod requests;
mod resolve;
mod rules;
mod simdata;
mod stress;
mod timeline;
