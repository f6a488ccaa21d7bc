//! Store tests of the modeling service on a fresh PostgreSQL database per test.

mod changes;
mod churn;
mod counters;
mod definitions;
mod deliveries;
mod funnel_scenarios;
mod identifiers;
mod journeys;
mod store;
