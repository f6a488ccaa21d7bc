//! Tests of the churn models: scenarios, naive references and edge cases.
#![allow(clippy::unwrap_used, reason = "tests")]

mod bgnbd_fit;
mod bgnbd_model;
mod inactivity;
mod mbgnbd_model;
mod rfm;
