//! Integration tests of the projection: one binary, modules by concern.

mod funnels;
mod models;
mod scenarios;
mod support;
mod timelines;
