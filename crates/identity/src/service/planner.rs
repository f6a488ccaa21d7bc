//! Running the resolution rule for a batch without holding an async worker.
//!
//! Planning a call of a thousand identifiers is milliseconds of CPU (tens in
//! a debug build). Done inline it holds a runtime worker for that long, and
//! every task queued behind it waits: Redis replies and their timeouts
//! included, so the cache's bounded calls time out against a healthy Redis
//! and the call falls back to PostgreSQL. Batches past a handful of items are
//! planned on the blocking pool instead.

use std::sync::Arc;

use uuid::Uuid;

use crate::domain::ResolveItem;
use crate::error::IdentityError;
use crate::graph::{self, GraphPlan, GraphView, Options};
use crate::rules::CompiledRules;

/// Batches of at most this many items are planned inline: handing them to
/// another thread would cost more than planning them.
pub const PLAN_INLINE_ITEMS: usize = 16;

/// A batch's items and rules, owned so that the plan can run on another
/// thread; planned again on every attempt of the call.
#[derive(Debug)]
pub(super) struct Planner {
    items: Arc<[ResolveItem]>,
    /// The tenant's rules.
    pub(super) rules: Arc<CompiledRules>,
    /// How the links are asserted.
    pub(super) options: Options,
}

impl Planner {
    pub(super) fn new(items: &[&ResolveItem], rules: CompiledRules, options: Options) -> Self {
        Self {
            items: items.iter().map(|item| (*item).clone()).collect(),
            rules: Arc::new(rules),
            options,
        }
    }

    /// Applies the rules to the items over `view` (see [`graph::plan`]).
    pub(super) async fn plan(&self, view: GraphView) -> Result<GraphPlan, IdentityError> {
        if self.items.len() <= PLAN_INLINE_ITEMS {
            return Ok(graph::plan(
                self.items.iter(),
                view,
                &self.rules,
                self.options,
                Uuid::now_v7,
            ));
        }
        let (items, rules, options) = (
            Arc::clone(&self.items),
            Arc::clone(&self.rules),
            self.options,
        );
        tokio::task::spawn_blocking(move || {
            graph::plan(items.iter(), view, &rules, options, Uuid::now_v7)
        })
        .await
        .map_err(IdentityError::Planner)
    }
}
