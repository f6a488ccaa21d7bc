//! Journeys read from a tenant's view: each person's touches since their previous conversion
//! (or since a pause longer than the journey gap, when the request sets one), cut to the
//! lookback window before a conversion in the range (a converting journey) or before the
//! pause's end or the range's end (a non-converting one), aggregated into a path table on the
//! view's partitions in parallel.

use touchline_analytics::attribution::{
    AttributionError, ChannelCredits, Journey, PathTable, PathTableBuilder, time_decay_credits,
};
use touchline_projection::query::{Condition, Dimension, Filter};
use touchline_projection::{CodeSet, Event, EventRef, PersonEvents, Projection};

mod walk;

pub(super) use walk::{Touch, walk};

use super::channels::{ChannelField, channel_table, property_channels, referrer_channels};
use super::query::{Conversion, Model, ValidAttribution};
use crate::journeys::RunContext;
use crate::journeys::compile::{self, Known};
use crate::journeys::query::{Matcher, Violations};
use crate::journeys::view::TenantView;

/// Consecutive events in one channel closer than this are one touch (one visit).
pub const VISIT_GAP_MS: i64 = 30 * 60 * 1000;
/// Converting journeys buffered for the time-decay models before they are credited.
const DECAY_BATCH: usize = 4096;
/// No channel: the touch is skipped.
pub(super) const NO_CHANNEL: u32 = u32::MAX;

/// Whether an event meets a condition: tables by event code and by touch code, and the
/// conditions on analysable properties, tested per event.
#[derive(Debug, Clone)]
struct Predicate {
    events: Vec<bool>,
    touches: Vec<bool>,
    properties: Vec<(usize, CodeSet)>,
}

impl Predicate {
    fn of(projection: &Projection, condition: &Condition) -> Self {
        let mut properties = Vec::new();
        let (on_event, on_touch): (Vec<Filter>, Vec<Filter>) = condition
            .filters
            .iter()
            .filter(|f| match f.dimension {
                Dimension::Property(slot) => {
                    properties.push((slot, f.codes.clone()));
                    false
                }
                _ => true,
            })
            .cloned()
            .partition(|f| f.dimension == Dimension::Event);
        let event_part = Condition {
            event: condition.event,
            filters: on_event,
        };
        let touch_part = Condition {
            event: None,
            filters: on_touch,
        };
        let events = (0..projection.dictionaries().events.len().max(1))
            .map(|code| {
                let event = Event {
                    event: code as u32,
                    ..Event::default()
                };
                compile::matches(&event_part, &event)
            })
            .collect();
        let touches = (0..projection.touch_count().max(1))
            .map(|code| {
                let event = Event {
                    touch: projection.touch(code as u16),
                    ..Event::default()
                };
                compile::matches(&touch_part, &event)
            })
            .collect();
        Self {
            events,
            touches,
            properties,
        }
    }

    fn holds(&self, event: &EventRef<'_>) -> bool {
        self.events
            .get(event.event() as usize)
            .copied()
            .unwrap_or(false)
            && self
                .touches
                .get(usize::from(event.touch_code()))
                .copied()
                .unwrap_or(false)
            && self
                .properties
                .iter()
                .all(|(slot, codes)| codes.contains(event.property(*slot)))
    }
}

/// A request bound to one view's codes.
#[derive(Debug)]
pub struct Plan {
    conversion: Predicate,
    touches: Vec<Predicate>,
    scope: Option<Predicate>,
    /// Channel code by touch code, or by the code of the property `channel_slot` names
    /// ([`NO_CHANNEL`]: skipped).
    channel_of: Vec<u32>,
    /// The analysable property that names channels, when the request asks for one.
    channel_slot: Option<usize>,
    /// The analysable property naming what referred an event, with the channel code of each
    /// of its values ([`NO_CHANNEL`]: an empty value, the event keeps its own channel).
    referrer: Option<(usize, Vec<u32>)>,
    /// The analysable property identifying what a conversion records, with whether each of
    /// its value codes is a key (an empty value is none).
    conversion_key: Option<(usize, Vec<bool>)>,
    /// Channel names by channel code.
    names: Vec<String>,
    range: (i64, i64),
    lookback_ms: i64,
    /// The pause after a touch that ends a journey.
    journey_gap_ms: Option<i64>,
    /// Half-lives of the time-decay models, in model order.
    half_lives: Vec<i64>,
    /// Whether a conversion is also the last touch of its own journey, on the channel its
    /// event is read as (for conversions stored without a person, credited to the channel
    /// that recorded them).
    conversion_touch: bool,
}

/// The slot of the analysable property `name`, or a NOT_ANALYSABLE violation under `field`.
fn analysable_slot(
    view: &TenantView,
    name: &str,
    field: &str,
    problems: &mut Violations,
) -> Option<usize> {
    let slot = crate::journeys::properties::slot(
        &view.properties,
        crate::journeys::properties::PROPERTIES_PREFIX,
        name,
    );
    if slot.is_none() {
        compile::not_analysable(name, &view.properties, field.to_owned(), problems);
    }
    slot
}

/// Whether each value code of the analysable property in `slot` is a non-empty value.
fn non_empty_values(projection: &Projection, slot: usize) -> Vec<bool> {
    projection
        .dictionaries()
        .properties
        .get(slot)
        .map(|values| {
            (0..values.len() as u32)
                .map(|code| values.text(code).is_some_and(|text| !text.is_empty()))
                .collect()
        })
        .unwrap_or_default()
}

/// What makes an event a conversion, over `known`'s codes.
fn conversion_predicate(
    known: Known<'_>,
    conversion: &Conversion,
    problems: &mut Violations,
) -> Predicate {
    let projection = known.projection;
    match conversion {
        Conversion::Event(matcher) => Predicate::of(
            projection,
            &compile::condition(known, matcher, "conversion_event", problems),
        ),
        Conversion::Dictionary(names) => {
            let mut any = Predicate::of(projection, &Condition::any());
            let events = &projection.dictionaries().events;
            for (code, event) in any.events.iter_mut().enumerate() {
                *event = events
                    .text(code as u32)
                    .is_some_and(|name| names.iter().any(|n| n == name));
            }
            any
        }
    }
}

/// The default touches: classified touchpoints (a touchpoint type set), the conversion
/// events' names excluded.
fn classified_touches(projection: &Projection, conversion: &Conversion) -> Predicate {
    let mut classified = Predicate::of(projection, &Condition::any());
    for (code, touch) in classified.touches.iter_mut().enumerate() {
        *touch = projection.touch(code as u16).touchpoint_type != 0;
    }
    let events = &projection.dictionaries().events;
    for (code, event) in classified.events.iter_mut().enumerate() {
        let name = events.text(code as u32).unwrap_or_default();
        *event = match conversion {
            Conversion::Event(matcher) => matcher.event_name != name,
            Conversion::Dictionary(names) => !names.iter().any(|n| n == name),
        };
    }
    classified
}

impl Plan {
    /// Binds `query` to `view`'s codes; unknown event names are field violations.
    pub fn new(
        view: &TenantView,
        query: &ValidAttribution,
        run: &RunContext,
    ) -> Result<Self, Violations> {
        let projection = &view.projection;
        let known = Known::new(view, &run.defined);
        let mut problems = Violations::default();
        let conversion = conversion_predicate(known, &query.conversion, &mut problems);
        let touches = if query.touchpoints.is_empty() {
            vec![classified_touches(projection, &query.conversion)]
        } else {
            query
                .touchpoints
                .iter()
                .enumerate()
                .map(|(i, matcher)| {
                    let at = format!("touchpoint_events[{i}]");
                    Predicate::of(
                        projection,
                        &compile::condition(known, matcher, &at, &mut problems),
                    )
                })
                .collect()
        };
        let scope = (!query.scope_filters.is_empty()).then(|| {
            let matcher = Matcher {
                event_name: String::new(),
                filters: query.scope_filters.clone(),
            };
            Predicate::of(
                projection,
                &compile::condition(known, &matcher, "scope", &mut problems),
            )
        });
        let channel_slot = match &query.channel {
            ChannelField::Property(name) => {
                analysable_slot(view, name, "channel_field", &mut problems)
            }
            _ => None,
        };
        let referrer_slot = query
            .referrer
            .as_deref()
            .and_then(|name| analysable_slot(view, name, "referrer_field", &mut problems));
        let key_slot = query
            .conversion_key
            .as_deref()
            .and_then(|name| analysable_slot(view, name, "conversion_key_field", &mut problems));
        if !problems.is_empty() {
            return Err(problems);
        }
        let (channel_of, mut names) = match channel_slot {
            Some(slot) => property_channels(projection, slot),
            None => channel_table(projection, &query.channel),
        };
        let referrer =
            referrer_slot.map(|slot| (slot, referrer_channels(projection, slot, &mut names)));
        let conversion_key = key_slot.map(|slot| (slot, non_empty_values(projection, slot)));
        Ok(Self {
            conversion,
            touches,
            scope,
            channel_of,
            channel_slot,
            referrer,
            conversion_key,
            names: names.into_names(),
            range: query.range,
            lookback_ms: query.lookback_ms,
            journey_gap_ms: query.journey_gap_ms,
            half_lives: query
                .models
                .iter()
                .filter_map(|m| match m {
                    Model::TimeDecay { half_life_ms } => Some(*half_life_ms),
                    _ => None,
                })
                .collect(),
            conversion_touch: false,
        })
    }

    /// The same plan with no touch but the conversions themselves: each conversion is the
    /// one touch of its own journey, on the channel its event is read as.
    pub fn with_conversion_touch(self) -> Self {
        Self {
            touches: Vec::new(),
            conversion_touch: true,
            ..self
        }
    }
}

impl Plan {
    /// The channel of a touchpoint event: what referred it when it names something, else its
    /// own channel field's ([`NO_CHANNEL`]: none).
    fn channel(&self, event: &EventRef<'_>) -> u32 {
        if let Some((slot, channel_of)) = &self.referrer {
            let referred = channel_of
                .get(event.property(*slot) as usize)
                .copied()
                .unwrap_or(NO_CHANNEL);
            if referred != NO_CHANNEL {
                return referred;
            }
        }
        let key = match self.channel_slot {
            Some(slot) => event.property(slot) as usize,
            None => usize::from(event.touch_code()),
        };
        self.channel_of.get(key).copied().unwrap_or(NO_CHANNEL)
    }

    /// The key of a conversion event (`None`: it has none, or the request reads none).
    fn conversion_key(&self, event: &EventRef<'_>) -> Option<u32> {
        let (slot, keys) = self.conversion_key.as_ref()?;
        let code = event.property(*slot);
        keys.get(code as usize)
            .copied()
            .unwrap_or(false)
            .then_some(code)
    }

    /// The channel names, by code.
    pub fn channel_names(&self) -> &[String] {
        &self.names
    }
}

/// Converting journeys waiting to be credited by the time-decay models.
#[derive(Debug, Default)]
struct DecayBatch {
    channels: Vec<u32>,
    times: Vec<i64>,
    /// (first touch index, touches, conversion time, value).
    journeys: Vec<(usize, usize, i64, f64)>,
}

/// What one worker gathers over its partitions.
#[derive(Debug)]
struct Gathered {
    builder: PathTableBuilder,
    decay: Vec<ChannelCredits>,
    batch: DecayBatch,
    touches: Vec<Touch>,
    channels: Vec<u32>,
    times: Vec<i64>,
    journeys: usize,
    persons: u64,
}

impl Gathered {
    fn new(plan: &Plan) -> Self {
        Self {
            builder: PathTableBuilder::with_channels(plan.names.clone()),
            decay: vec![ChannelCredits::zeros(plan.names.len()); plan.half_lives.len()],
            batch: DecayBatch::default(),
            touches: Vec::new(),
            channels: Vec::new(),
            times: Vec::new(),
            journeys: 0,
            persons: 0,
        }
    }

    /// Credits the buffered converting journeys under every time-decay model.
    fn flush_decay(&mut self, plan: &Plan) -> Result<(), AttributionError> {
        if self.batch.journeys.is_empty() {
            return Ok(());
        }
        let batch = &self.batch;
        let journeys: Vec<Journey<'_>> = batch
            .journeys
            .iter()
            .map(|&(start, len, end_ms, value)| Journey {
                channels: &batch.channels[start..start + len],
                touch_times_ms: &batch.times[start..start + len],
                end_ms,
                converted: true,
                value,
            })
            .collect();
        for (credits, &half_life) in self.decay.iter_mut().zip(&plan.half_lives) {
            credits.merge(&time_decay_credits(&journeys, plan.names.len(), half_life)?);
        }
        self.batch = DecayBatch::default();
        Ok(())
    }

    /// Adds the journey made of `touches` that ends at `end_ms` (a conversion of `value`
    /// when `converted`).
    fn journey(
        &mut self,
        plan: &Plan,
        touches: &[Touch],
        end_ms: i64,
        converted: bool,
        value: f64,
    ) -> Result<(), AttributionError> {
        self.channels.clear();
        self.times.clear();
        for touch in touches {
            self.channels.push(touch.channel);
            self.times.push(touch.first_ms);
        }
        if self.channels.is_empty() && !converted {
            return Ok(());
        }
        let journey = Journey {
            channels: &self.channels,
            touch_times_ms: &self.times,
            end_ms,
            converted,
            value,
        };
        self.builder.add_journey(self.journeys, &journey)?;
        self.journeys += 1;
        if converted && !plan.half_lives.is_empty() && !self.channels.is_empty() {
            let start = self.batch.channels.len();
            self.batch.channels.extend_from_slice(&self.channels);
            self.batch.times.extend_from_slice(&self.times);
            self.batch
                .journeys
                .push((start, self.channels.len(), end_ms, value));
            if self.batch.journeys.len() >= DECAY_BATCH {
                self.flush_decay(plan)?;
            }
        }
        Ok(())
    }

    fn person(&mut self, plan: &Plan, person: PersonEvents<'_>) -> Result<(), AttributionError> {
        let before = self.journeys;
        let mut touches = std::mem::take(&mut self.touches);
        let walked = walk(
            plan,
            person,
            &mut touches,
            |touches, end_ms, converted, value| {
                self.journey(plan, touches, end_ms, converted, value)
            },
        );
        self.touches = touches;
        walked?;
        if self.journeys > before {
            self.persons += 1;
        }
        Ok(())
    }
}

/// The journeys of a view as a path table, with what each time-decay model credits.
#[derive(Debug)]
pub struct Collected {
    /// Distinct paths with their journeys.
    pub table: PathTable,
    /// Per time-decay model, in model order.
    pub decay: Vec<ChannelCredits>,
    /// Persons with at least one journey.
    pub persons: u64,
}

/// Reads every person's journeys on up to `run.threads` threads.
pub fn collect(
    view: &TenantView,
    plan: &Plan,
    run: &RunContext,
) -> Result<Collected, AttributionError> {
    let workers = view.projection.scan(
        run.threads,
        || Gathered::new(plan),
        |state: &mut Gathered, person| {
            if run.cancel.is_cancelled() || !run.admits(person.person()) {
                return Ok(());
            }
            state.person(plan, person)
        },
    )?;
    let mut builder = PathTableBuilder::with_channels(plan.names.clone());
    let mut decay = vec![ChannelCredits::zeros(plan.names.len()); plan.half_lives.len()];
    let mut persons = 0;
    for mut worker in workers {
        worker.flush_decay(plan)?;
        for (total, part) in decay.iter_mut().zip(&worker.decay) {
            total.merge(part);
        }
        persons += worker.persons;
        builder.merge(worker.builder);
    }
    Ok(Collected {
        table: builder.finish(),
        decay,
        persons,
    })
}
