//! Segments: rules over persons (`rule`, with the conditions that read the whole view in
//! `conditions`) and who they select over a tenant's view
//! (`evaluate`). Keeping membership current, publishing its changes and serving them is the
//! service layer's job; this module only answers "who is in, and until when is that sure".

mod conditions;
pub mod evaluate;
pub mod rule;

#[cfg(test)]
mod tests;

pub use conditions::{credited, dropped_off};
pub use evaluate::{
    Compiled, Context, Evaluation, Lookups, ViewAt, compile, evaluate_in_order, holds, members,
    preview,
};
pub use rule::{
    Aggregation, Attributed, ChurnTest, Comparison, DropOff, EventAggregate, IdentifierHeld, Rule,
    Window,
};
