//! Events to stream to a running collection service: every record of every person, in each
//! person's time order, as [`Event`]s (SDK events as they are, business records converted).
//! Ad daily reports are aggregates, not events, and are not streamed.

use std::collections::VecDeque;

use crate::SimError;
use crate::config::SimConfig;
use crate::engine::{Ctx, PersonOut, Stats, generate_person};
use crate::record::Event;

/// An iterator over all events of a run, generated lazily person by person (flat memory).
#[derive(Debug)]
pub struct EventStream {
    ctx: Ctx,
    next_person: u64,
    stats: Stats,
    out: PersonOut,
    pending: VecDeque<Event>,
}

impl EventStream {
    /// Persons generated so far.
    pub fn persons_done(&self) -> u64 {
        self.next_person
    }

    /// Persons in the run.
    pub fn persons_total(&self) -> u64 {
        self.ctx.cfg.persons
    }
}

impl Iterator for EventStream {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        while self.pending.is_empty() {
            if self.next_person >= self.ctx.cfg.persons {
                return None;
            }
            generate_person(&self.ctx, self.next_person, &mut self.stats, &mut self.out);
            self.next_person += 1;
            for rec in &self.out.records {
                self.pending
                    .push_back(rec.to_event(&self.ctx.layout.files[rec.file]));
            }
        }
        self.pending.pop_front()
    }
}

/// The events of the run `cfg`, as `--send` would stream them.
pub fn events(cfg: SimConfig) -> Result<EventStream, SimError> {
    Ok(EventStream {
        ctx: Ctx::new(cfg)?,
        next_person: 0,
        stats: Stats::default(),
        out: PersonOut::default(),
        pending: VecDeque::new(),
    })
}

/// Streams the run to a collection service at `addr`.
///
/// The collection service's generated client is not available in this build, so this reports
/// that clearly instead of pretending; [`events`] already yields what would be sent.
pub fn send(addr: &str, _cfg: SimConfig) -> Result<(), SimError> {
    Err(SimError::SendNotBuilt(addr.to_owned()))
}
