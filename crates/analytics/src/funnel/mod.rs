//! Funnels: how many persons went through ordered steps within a conversion window, where
//! they dropped, how long each step took, split by a breakdown value.
//!
//! The caller (the modeling service) turns each person's events into [`FunnelEvent`]s —
//! time in ms, clean-log sequence, a bit mask of the steps and of the exclusions each event
//! matches, a breakdown code — sorted by `(time, seq)`, events matching nothing included.
//! [`FunnelEvaluator`] finds each person's counted attempt; [`FunnelAccumulator`] counts
//! persons and merges across partitions; [`run_partitions`] does both on scoped threads;
//! [`FunnelAccumulator::finish`] gives the [`FunnelReport`] and the [`PersonIndex`] that
//! lists who reached or dropped at a step. Only events inside the scope's time range are
//! passed in (the contract's rule, as PostHog): an attempt whose later steps would fall after
//! the range end simply stops there.
//!
//! # Rules
//!
//! The analytics definitions and the contract fix most of them: every step-1 event starts an
//! attempt; an attempt fills step k with an event after its step k−1 event and at most the
//! window after its step-1 event (`t_k − t_1 ≤ W`); one event fills at most one step of an
//! attempt (unlike ClickHouse's `windowFunnel`, where one event may fill several steps); when
//! several attempts reach the person's furthest step the one that started latest counts; a
//! person counts once, at their furthest step. Where they leave a choice open:
//!
//! - **An attempt fills each step with the earliest eligible event** (greedy). For ordered
//!   funnels this reaches as far as any choice could; strict funnels take the next event only.
//! - **Equal timestamps** (ordered and strict): an event fills step k only if its time is
//!   later than the step k−1 event's, or equal when steps k−1 and k have the same canonical
//!   event ([`FunnelDefinition::step_event_types`]), because then the clean-log sequence orders
//!   them. So `signup, signup` at one instant completes a 2-step signup→signup funnel, while
//!   `signup, pay` at one instant does not complete signup→pay. PostHog counts the latter as
//!   converted; we follow the contract here, deliberately.
//! - **Exclusions** (ordered and strict): an exclusion event invalidates an attempt when it
//!   comes after the attempt's `from_step` event (in `(time, seq)` order) and before its
//!   `to_step` event; if the attempt never reached `to_step`, when it comes at most the window
//!   after step 1 (as PostHog: an exclusion within the window discards the attempt even when
//!   nothing follows it). The event that fills `from_step` or `to_step` itself never counts as
//!   between. The person's furthest step is taken over all attempts, invalidated ones
//!   included; the person is counted only if some clean attempt reaches it — the latest
//!   started such attempt is the counted one — and otherwise is removed from every step. So an
//!   invalidated attempt hides a shorter clean one, but a clean attempt reaching the same step
//!   (earlier or later) keeps the person. Strict funnels apply the same rule; an exclusion
//!   event also breaks a strict attempt like any other event.
//! - **Unordered**: every event matching any step starts an attempt over the events within
//!   the window of it; "k distinct steps" is a maximum matching of events to steps (one event,
//!   one step). Exclusions must span the whole funnel (as PostHog) and only reset progress: an
//!   exclusion event ends every attempt that started before it; the person is never removed.
//!   Step k's time is when the attempt first had k distinct steps, so conversion time k is
//!   the gap between the (k−1)-th and k-th distinct step done.
//! - **Breakdown**: `first_touch` / `last_touch` take the earliest / latest non-missing value
//!   among all the person's events that matched any step (not only the counted attempt's);
//!   `step N` takes the value on the counted attempt's step-N event, and a person whose
//!   counted attempt did not reach step N falls under the missing value — one value per
//!   person, never a row per value; `all_events` counts the person under every distinct value
//!   on the counted attempt's step events (the missing value included when a step event lacks
//!   one), so breakdown rows may sum to more than the overall row, which counts each person
//!   once. PostHog's `all_events` instead runs the funnel separately per value; the contract
//!   says "every value of every event of the attempt", which we follow.
//! - Breakdown values are dictionary codes here; turning them into text is the caller's job,
//!   with PostHog's rule for numbers: integers print without a fraction (`0`, not `0.0`).
//! - **Conversion times** come from the counted attempt: per step k ≥ 2, the time from the step
//!   k−1 event (mean and lower median) and from the step-1 event (mean), in ms.
//! - Breakdown rows are ranked by `count(1)` descending, then by code; past the requested top
//!   N they are folded into one "other" row.
//!
//! # Cost
//!
//! Ordered and strict funnels are one pass per person, O(events × steps), allocation-free
//! with the evaluator's reused buffers; ordered funnels without exclusions, the common case,
//! take a lighter pass that keeps at most two attempts per step. Unordered funnels are
//! O(attempts × events in window × steps²) at worst. Memory for the figures: one sample (4
//! bytes with windows up to 49 days, else 8) per counted person and step past the first, per
//! row they count in (see [`StepStats`]); the person index adds about 48 bytes per counted
//! person.

mod aggregate;
mod definition;
mod evaluate;
mod forward;
mod parallel;
mod persons;
mod samples;
mod sequential;
mod unordered;

#[cfg(test)]
mod tests;

pub use aggregate::{BreakdownRow, FunnelAccumulator, FunnelReport, StepStats, StepSummary};
pub use definition::{
    Attribution, BreakdownSpec, ExclusionRange, FunnelDefinition, FunnelError, FunnelEvent,
    FunnelOrder, MAX_EXCLUSIONS, MAX_STEPS, MAX_WINDOW_MS, MIN_WINDOW_MS, MISSING_VALUE,
    ValidFunnel,
};
pub use evaluate::{FunnelEvaluator, PersonOutcome, PersonStatus};
pub use parallel::{PersonBatch, run_partition, run_partitions};
pub use persons::{ListedPerson, PersonIndex, PersonPage, PersonQuery, PersonSelection};
