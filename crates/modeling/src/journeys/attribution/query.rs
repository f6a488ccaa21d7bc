//! Attribution requests as the service takes them, free of gRPC, and the rules they must meet
//! before any data is read. Every rule that fails adds a field violation, so one answer names
//! every problem of a request.

use crate::journeys::query::{
    DAY_MS, FieldFilter, Matcher, OpenStart, Scope, Violations, check_matcher, resolve_range,
};

/// Most models in one call.
pub const MAX_MODELS: usize = 10;
/// The default lookback window: 30 days.
pub const DEFAULT_LOOKBACK_MS: i64 = 30 * DAY_MS;
/// The longest lookback window: 366 days.
pub const MAX_LOOKBACK_MS: i64 = 366 * DAY_MS;
/// The shortest lookback window.
pub const MIN_LOOKBACK_MS: i64 = 1_000;
/// The shortest journey gap: an hour, longer than a visit's pause, so a pause that ends a
/// journey never falls inside one visit.
pub const MIN_JOURNEY_GAP_MS: i64 = 3_600_000;
/// The longest time-decay half-life.
pub const MAX_HALF_LIFE_MS: i64 = 366 * DAY_MS;
/// The default number of channel orders sampled for an approximate Shapley value.
pub const DEFAULT_SHAPLEY_SAMPLES: usize = 1_000;
/// The most channel orders sampled.
pub const MAX_SHAPLEY_SAMPLES: usize = 100_000;
/// Most touchpoint matchers.
pub const MAX_TOUCHPOINT_MATCHERS: usize = 20;
/// Most supplied channel costs.
pub const MAX_CHANNEL_COSTS: usize = 10_000;

pub use super::model_request::{GameChoice, Model, ModelRequest, ModelType, check_models};

/// Supplied costs by channel name; `path` names the repeated field.
pub fn check_costs(costs: &[(String, f64)], path: &str, problems: &mut Violations) {
    if costs.len() > MAX_CHANNEL_COSTS {
        problems.add(
            path,
            "TOO_MANY_COSTS",
            format!("at most {MAX_CHANNEL_COSTS} channel costs"),
        );
    }
    let mut seen = std::collections::HashSet::new();
    for (i, (channel, cost)) in costs.iter().enumerate() {
        if channel.trim().is_empty() {
            problems.add(format!("{path}[{i}].channel"), "REQUIRED", "a channel name");
        } else if !seen.insert(channel.trim()) {
            problems.add(
                format!("{path}[{i}].channel"),
                "DUPLICATE_CHANNEL",
                format!("{channel:?} has a cost already: at most one entry per channel"),
            );
        }
        if !(cost.is_finite() && *cost >= 0.0) {
            problems.add(
                format!("{path}[{i}].cost"),
                "OUT_OF_RANGE",
                "a finite non-negative cost",
            );
        }
    }
}

pub use super::channels::ChannelField;
use super::channels::{check_channel_field, property_field};

/// Where ROI costs come from, as requested.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum CostRequest {
    /// No ROI.
    #[default]
    None,
    /// Summed from stored cost-report events.
    Events {
        /// The cost events.
        event: Option<Matcher>,
        /// The property holding the cost.
        cost_field: String,
        /// The field naming the channel (empty: `channel`).
        channel_field: String,
    },
    /// Given per channel.
    Supplied(Vec<(String, f64)>),
}

/// Where ROI costs come from, checked.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum Costs {
    /// No ROI.
    #[default]
    None,
    /// Summed from stored events of `event_name`: `cost_property` per row, grouped by the
    /// event's channel or by `channel_property` when set.
    Events {
        /// The cost events' name.
        event_name: String,
        /// The property holding the cost.
        cost_property: String,
        /// The property naming the channel; `None`: the event's channel.
        channel_property: Option<String>,
    },
    /// Given per channel.
    Supplied(Vec<(String, f64)>),
}

/// What a caller asked to be done with the conversions stored without a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UnidentifiedChoice {
    /// Counted apart, credited to no channel.
    #[default]
    Apart,
    /// Each also credited to the channel that recorded it, as a journey of one touch.
    RecordingChannel,
    /// A value the API does not define.
    Unknown,
}

/// Whether `choice` credits the conversions stored without a person; a value the API does
/// not define is a violation.
fn credits_unidentified(choice: UnidentifiedChoice, problems: &mut Violations) -> bool {
    if choice == UnidentifiedChoice::Unknown {
        problems.add(
            "unidentified_conversions".to_owned(),
            "UNKNOWN_VALUE",
            "APART or RECORDING_CHANNEL",
        );
    }
    choice == UnidentifiedChoice::RecordingChannel
}

/// Attribution on stored events as a caller asked for it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct AttributionQuery {
    /// The conversion event (`None`: the dictionary's conversions).
    pub conversion: Option<Matcher>,
    /// The value field (empty: the dictionary's value property).
    pub value_field: String,
    /// The touchpoint events (none: every classified touchpoint but the conversion).
    pub touchpoints: Vec<Matcher>,
    /// The channel field (empty: `channel`).
    pub channel_field: String,
    /// The field naming what referred an event (empty: none).
    pub referrer_field: String,
    /// The field identifying what a conversion records (empty: none).
    pub conversion_key_field: String,
    /// The lookback window, when given.
    pub lookback_ms: Option<i64>,
    /// The pause that ends a journey, when given.
    pub journey_gap_ms: Option<i64>,
    /// What becomes of the conversions stored without a person.
    pub unidentified: UnidentifiedChoice,
    /// The models.
    pub models: Vec<ModelRequest>,
    /// Costs for ROI.
    pub costs: CostRequest,
    /// The conversions attributed.
    pub scope: Scope,
}

/// What a conversion is.
#[derive(Debug, Clone, PartialEq)]
pub enum Conversion {
    /// Events meeting a matcher.
    Event(Matcher),
    /// Every event the tenant's dictionary flags as a conversion, by name (filled in by the
    /// service from the dictionary).
    Dictionary(Vec<String>),
}

/// An attribution on stored events whose every rule holds (event names still as text).
#[derive(Debug, Clone, PartialEq)]
pub struct ValidAttribution {
    /// The conversion.
    pub conversion: Conversion,
    /// The touchpoint events (none: every classified touchpoint but the conversion).
    pub touchpoints: Vec<Matcher>,
    /// The channel column.
    pub channel: ChannelField,
    /// The analysable property naming what referred an event, whose values are read as
    /// channel names (`None`: every event keeps its own channel).
    pub referrer: Option<String>,
    /// The analysable property whose value identifies what a conversion records: a person's
    /// conversions with one value count once (`None`: every conversion counts).
    pub conversion_key: Option<String>,
    /// The lookback window in ms.
    pub lookback_ms: i64,
    /// The pause after a touch that ends a journey, in ms (`None`: journeys end at
    /// conversions and at the range's end only).
    pub journey_gap_ms: Option<i64>,
    /// Whether each conversion stored without a person is credited to the channel that
    /// recorded it, as a journey of one touch (otherwise it is counted apart only).
    pub credit_unidentified: bool,
    /// The models, defaults filled in.
    pub models: Vec<Model>,
    /// Costs for ROI.
    pub costs: Costs,
    /// `[start, end)` of the conversions attributed.
    pub range: (i64, i64),
    /// Conditions every read event meets.
    pub scope_filters: Vec<FieldFilter>,
}

impl ValidAttribution {
    /// Every event name the request names (the dictionary's conversions are not checked
    /// against stored names: one nobody did yet counts nothing).
    pub fn event_names(&self) -> impl Iterator<Item = &str> {
        let conversion = match &self.conversion {
            Conversion::Event(matcher) => Some(matcher.event_name.as_str()),
            Conversion::Dictionary(_) => None,
        };
        conversion
            .into_iter()
            .chain(self.touchpoints.iter().map(|m| m.event_name.as_str()))
            .filter(|name| !name.is_empty())
    }
}

fn property_of(field: &str) -> Option<&str> {
    let name = field.strip_prefix("properties.").unwrap_or(field);
    (!name.is_empty() && !name.contains('.')).then_some(name)
}

fn check_cost_request(costs: &CostRequest, problems: &mut Violations) -> Costs {
    match costs {
        CostRequest::None => Costs::None,
        CostRequest::Supplied(list) => {
            check_costs(list, "costs.supplied_costs.channel_costs", problems);
            Costs::Supplied(list.clone())
        }
        CostRequest::Events {
            event,
            cost_field,
            channel_field,
        } => {
            let event = check_matcher(event.as_ref(), "costs.cost_events.event", problems);
            if event.event_name.is_empty() {
                problems.add(
                    "costs.cost_events.event.event_name",
                    "REQUIRED",
                    "the event reporting cost, e.g. ad_daily_report",
                );
            }
            if !event.filters.is_empty() {
                problems.add(
                    "costs.cost_events.event.filters",
                    "UNSUPPORTED",
                    "cost events take no filters yet: name the event alone",
                );
            }
            let cost_property = property_of(cost_field).unwrap_or_else(|| {
                problems.add(
                    "costs.cost_events.cost_field",
                    "REQUIRED",
                    "the property holding the cost, e.g. properties.spend",
                );
                ""
            });
            let channel_property = match channel_field.as_str() {
                "" | "channel" => None,
                other => match other.strip_prefix("properties.").and_then(property_of) {
                    Some(name) => Some(name.to_owned()),
                    None => {
                        problems.add(
                            "costs.cost_events.channel_field",
                            "UNKNOWN_FIELD",
                            "channel, or properties.{name}",
                        );
                        None
                    }
                },
            };
            Costs::Events {
                event_name: event.event_name,
                cost_property: cost_property.to_owned(),
                channel_property,
            }
        }
    }
}

fn check_conversion(conversion: Option<&Matcher>, problems: &mut Violations) -> Conversion {
    match conversion {
        None => Conversion::Dictionary(Vec::new()),
        Some(matcher) => {
            let matcher = check_matcher(Some(matcher), "conversion_event", problems);
            if matcher.event_name.is_empty() {
                problems.add(
                    "conversion_event.event_name",
                    "REQUIRED",
                    "the conversion event, e.g. submit_order; leave conversion_event unset for the dictionary's conversions",
                );
            }
            Conversion::Event(matcher)
        }
    }
}

impl AttributionQuery {
    /// Checks every rule; the range defaults to the 30 days before `now_ms`.
    pub fn validate(&self, now_ms: i64) -> Result<ValidAttribution, Violations> {
        let mut problems = Violations::default();
        let conversion = check_conversion(self.conversion.as_ref(), &mut problems);
        if !matches!(self.value_field.as_str(), "" | "value") {
            problems.add(
                "value_field",
                "NOT_ANALYSABLE",
                "only the dictionary's value property is analysable: leave value_field empty",
            );
        }
        if self.touchpoints.len() > MAX_TOUCHPOINT_MATCHERS {
            problems.add(
                "touchpoint_events",
                "TOO_MANY_MATCHERS",
                format!("at most {MAX_TOUCHPOINT_MATCHERS} touchpoint matchers"),
            );
        }
        let touchpoints = self
            .touchpoints
            .iter()
            .enumerate()
            .map(|(i, m)| check_matcher(Some(m), &format!("touchpoint_events[{i}]"), &mut problems))
            .collect();
        let channel = check_channel_field(&self.channel_field, &mut problems);
        let referrer = property_field(&self.referrer_field, "referrer_field", &mut problems);
        let conversion_key = property_field(
            &self.conversion_key_field,
            "conversion_key_field",
            &mut problems,
        );
        let lookback_ms = self.lookback_ms.unwrap_or(DEFAULT_LOOKBACK_MS);
        if !(MIN_LOOKBACK_MS..=MAX_LOOKBACK_MS).contains(&lookback_ms) {
            problems.add(
                "lookback_window",
                "OUT_OF_RANGE",
                "from 1 second to 366 days; unset for 30 days",
            );
        }
        // A journey a pause ended is cut to the lookback window before the pause's end, so
        // a longer gap would leave none of its touches.
        if self
            .journey_gap_ms
            .is_some_and(|gap| !(MIN_JOURNEY_GAP_MS..=lookback_ms).contains(&gap))
        {
            problems.add(
                "journey_gap",
                "OUT_OF_RANGE",
                "from 1 hour to the lookback window (30 days unless set); unset for journeys \
                 that end at conversions only",
            );
        }
        let models = check_models(&self.models, true, &mut problems);
        let costs = check_cost_request(&self.costs, &mut problems);
        let credit_unidentified = credits_unidentified(self.unidentified, &mut problems);
        let range = resolve_range(
            &self.scope,
            now_ms,
            DEFAULT_LOOKBACK_MS,
            OpenStart::DefaultLength,
            "scope",
            &mut problems,
        );
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(ValidAttribution {
            conversion,
            touchpoints,
            channel,
            referrer,
            conversion_key,
            lookback_ms,
            journey_gap_ms: self.journey_gap_ms,
            credit_unidentified,
            models,
            costs,
            range,
            scope_filters: self.scope.event_filters.clone(),
        })
    }
}
