//! A valid query bound to one tenant's projection: names become dictionary codes, filters
//! become code sets, and an event name no stored event carries is refused with the nearest
//! names that do (a funnel over a misspelt name would otherwise answer zeros, silently).

use touchline_analytics::funnel::{Attribution, ExclusionRange};
use touchline_projection::query::{
    Condition, Dimension, Filter, FunnelBreakdown, FunnelExclusion, FunnelSpec,
    Scope as ProjectionScope, TimeRange,
};
use touchline_projection::{CodeSet, Dictionary, Event, Projection};
use touchline_proto::common::v1::{Department, TouchpointType};

use super::RunContext;
use super::TenantView;
use super::query::{
    BreakdownAttribution, Field, FieldFilter, Matcher, Operator, ValidFunnel, Violations,
};

/// The projection column a field reads in a view that keeps `properties` (analysable
/// property names, by slot); `None` for a property the view does not keep.
pub fn dimension(field: &Field, properties: &[String]) -> Option<Dimension> {
    Some(match field {
        Field::EventName => Dimension::Event,
        Field::Channel => Dimension::Channel,
        Field::Touchpoint => Dimension::Touchpoint,
        Field::Source => Dimension::Source,
        Field::TouchpointType => Dimension::TouchpointType,
        Field::Department => Dimension::Department,
        Field::Property(name) => Dimension::Property(super::properties::slot(
            properties,
            super::properties::PROPERTIES_PREFIX,
            name,
        )?),
    })
}

/// The column `field` reads in `view`; `None` for a property the view does not keep (the
/// query's compilation refuses it first).
pub fn view_dimension(view: &TenantView, field: &Field) -> Option<Dimension> {
    dimension(field, &view.properties)
}

/// The refusal of a property the view does not keep.
pub fn not_analysable(name: &str, properties: &[String], field: String, problems: &mut Violations) {
    let kept = if properties.is_empty() {
        "none is marked yet".to_owned()
    } else {
        properties.join(", ")
    };
    problems.add(
        field,
        "NOT_ANALYSABLE",
        format!(
            "properties.{name} is not analysable: add it to the model settings' analysable_properties ({kept}) / 该属性未设为可分析，请在模型设置的 analysable_properties 中添加"
        ),
    );
}

/// The text of an enum column's code: its short lower-case name (`online`,
/// `after_sales`, `marketing`); the empty string for unspecified or unknown.
fn enum_text(field: &Field, code: u32) -> String {
    let number = i32::try_from(code).unwrap_or(0);
    let name = match field {
        Field::TouchpointType => TouchpointType::try_from(number)
            .ok()
            .filter(|t| *t != TouchpointType::Unspecified)
            .map(|t| {
                t.as_str_name()
                    .trim_start_matches("TOUCHPOINT_TYPE_")
                    .to_owned()
            }),
        Field::Department => Department::try_from(number)
            .ok()
            .filter(|d| *d != Department::Unspecified)
            .map(|d| d.as_str_name().trim_start_matches("DEPARTMENT_").to_owned()),
        _ => None,
    };
    name.map(|n| n.to_ascii_lowercase()).unwrap_or_default()
}

/// The dictionary of a dimension's column; `None` for the enum columns.
fn dictionary(projection: &Projection, dimension: Dimension) -> Option<&Dictionary> {
    let dictionaries = projection.dictionaries();
    match dimension {
        Dimension::Event => Some(&dictionaries.events),
        Dimension::Channel => Some(&dictionaries.channels),
        Dimension::Touchpoint => Some(&dictionaries.touchpoints),
        Dimension::Source => Some(&dictionaries.sources),
        Dimension::Property(slot) => dictionaries.properties.get(slot),
        Dimension::TouchpointType | Dimension::Department | Dimension::ChannelTouchpoint => None,
    }
}

/// The code of `text` in `field`'s column (read as `dimension`), when an event carries it.
pub fn code_of(
    projection: &Projection,
    field: &Field,
    dimension: Dimension,
    text: &str,
) -> Option<u32> {
    match dictionary(projection, dimension) {
        Some(dictionary) => dictionary.code(text),
        None => (0..256u32).find(|&code| enum_text(field, code) == text),
    }
}

/// The texts of one column's codes, read without allocating: what breakdown rows are
/// labelled with and what ties between them are ordered by (sorts compare many times).
#[derive(Debug)]
pub enum Texts<'a> {
    /// A dictionary column: its texts as stored.
    Dictionary(&'a Dictionary),
    /// An enum column: its 256 short names, rendered once.
    Enum(Vec<String>),
}

impl<'a> Texts<'a> {
    /// The texts of `field`'s column (read as `dimension`) in `projection`.
    pub fn of(projection: &'a Projection, field: &Field, dimension: Dimension) -> Self {
        match dictionary(projection, dimension) {
            Some(dictionary) => Texts::Dictionary(dictionary),
            None => Texts::Enum((0..256u32).map(|code| enum_text(field, code)).collect()),
        }
    }

    /// The texts of `field`'s column in `view` (empty for a property it does not keep).
    pub fn for_view(view: &'a TenantView, field: &Field) -> Self {
        match view_dimension(view, field) {
            Some(dimension) => Self::of(&view.projection, field, dimension),
            None => Texts::Enum(Vec::new()),
        }
    }

    /// The text of `code` (empty for a code the column never handed out).
    pub fn get(&self, code: u32) -> &str {
        match self {
            Texts::Dictionary(dictionary) => dictionary.text(code).unwrap_or_default(),
            Texts::Enum(names) => names.get(code as usize).map_or("", String::as_str),
        }
    }
}

/// A value as an enum column's text: the contract's full name (`TOUCHPOINT_TYPE_OFFLINE`)
/// and the short one (`offline`) in any case.
fn enum_value(value: &str) -> String {
    let lower = value.to_ascii_lowercase();
    lower
        .strip_prefix("touchpoint_type_")
        .or_else(|| lower.strip_prefix("department_"))
        .unwrap_or(&lower)
        .to_owned()
}

/// Whether a column's text satisfies a filter. The missing value is the empty string, so
/// NOT_EQUALS and NOT_CONTAINS match it, as the contract says. Text columns compare
/// exactly; enum columns (`is_enum`) by name in any case.
fn accepts(filter: &FieldFilter, text: &str, is_enum: bool) -> bool {
    let equal = |value: &String| {
        if is_enum {
            !text.is_empty() && enum_value(value) == text
        } else {
            value == text
        }
    };
    let first = filter.values.first();
    if let Some(accepted) = super::properties::compares(filter.operator, text, &filter.values) {
        return accepted;
    }
    match filter.operator {
        Operator::Equals => filter.values.iter().any(equal),
        Operator::NotEquals => !filter.values.iter().any(equal),
        Operator::Contains => first.is_some_and(|v| text.contains(v.as_str())),
        Operator::NotContains => !first.is_some_and(|v| text.contains(v.as_str())),
        Operator::IsSet => !text.is_empty(),
        Operator::IsNotSet => text.is_empty(),
        Operator::GreaterThan
        | Operator::GreaterOrEqual
        | Operator::LessThan
        | Operator::LessOrEqual
        | Operator::Between
        | Operator::Unsupported(_) => false,
    }
}

/// Whether a text value meets `filter` (text compared exactly; comparisons numeric when
/// both sides are numbers).
pub fn accepts_text(filter: &FieldFilter, text: &str) -> bool {
    accepts(filter, text, false)
}

/// The codes of `dictionary` whose text meets `filter`.
pub fn matching_codes(dictionary: &Dictionary, filter: &FieldFilter) -> CodeSet {
    dictionary.matching(|text| accepts(filter, text, false))
}

/// `filter` over the view's codes; a property the view does not keep is a violation of
/// `path` (a field the request check refused was named there already).
fn filter(
    known: Known<'_>,
    filter: &FieldFilter,
    path: &str,
    problems: &mut Violations,
) -> Option<Filter> {
    let field = Field::parse(&filter.field).ok()?;
    let Some(dimension) = dimension(&field, known.properties) else {
        if let Field::Property(name) = &field {
            not_analysable(name, known.properties, format!("{path}.field"), problems);
        }
        return None;
    };
    let codes = match dictionary(known.projection, dimension) {
        Some(dictionary) => dictionary.matching(|text| accepts(filter, text, false)),
        None => {
            CodeSet::of((0..256u32).filter(|&code| accepts(filter, &enum_text(&field, code), true)))
        }
    };
    Some(Filter { dimension, codes })
}

/// Every filter of `filters` over the view's codes, each problem under `path[i]`.
fn filters_of(
    known: Known<'_>,
    filters: &[FieldFilter],
    path: &str,
    problems: &mut Violations,
) -> Vec<Filter> {
    filters
        .iter()
        .enumerate()
        .filter_map(|(index, f)| filter(known, f, &format!("{path}[{index}]"), problems))
        .collect()
}

/// Up to three known event names (stored, or `defined` in the dictionary) closest to `name`.
pub fn nearest_names(events: &Dictionary, defined: &[String], name: &str) -> Vec<String> {
    let stored = (1..events.len() as u32).filter_map(|code| events.text(code));
    let mut known: Vec<&str> = stored.chain(defined.iter().map(String::as_str)).collect();
    known.sort_unstable();
    known.dedup();
    let mut scored: Vec<(usize, &str)> = known
        .into_iter()
        .map(|known| (strsim::levenshtein(name, known), known))
        .filter(|(distance, known)| *distance <= (known.len().max(name.len()) / 2).max(2))
        .collect();
    scored.sort();
    scored
        .into_iter()
        .take(3)
        .map(|(_, known)| known.to_owned())
        .collect()
}

/// A condition no event meets: a step on an event the dictionary defines but nobody did yet.
pub(super) fn nothing() -> Condition {
    Condition {
        event: None,
        filters: vec![Filter {
            dimension: Dimension::Event,
            codes: CodeSet::default(),
        }],
    }
}

/// What a query's names are checked against: the names stored events carry (the
/// projection's dictionary), the names the tenant's event dictionary defines, and the
/// properties the view keeps.
#[derive(Debug, Clone, Copy)]
pub struct Known<'a> {
    /// The tenant's projection.
    pub projection: &'a Projection,
    /// Names the event dictionary defines (empty when it could not be read).
    pub defined: &'a [String],
    /// The analysable paths the view keeps, by slot.
    pub properties: &'a [String],
}

impl<'a> Known<'a> {
    /// What `view` and the names `defined` know.
    pub fn new(view: &'a TenantView, defined: &'a [String]) -> Self {
        Self {
            projection: &view.projection,
            defined,
            properties: &view.properties,
        }
    }
}

pub(super) fn condition(
    known: Known<'_>,
    matcher: &Matcher,
    path: &str,
    problems: &mut Violations,
) -> Condition {
    let projection = known.projection;
    let events = &projection.dictionaries().events;
    let event = if matcher.event_name.is_empty() {
        None
    } else if let Some(code) = events.code(&matcher.event_name) {
        Some(code)
    } else if known.defined.contains(&matcher.event_name) {
        return nothing();
    } else {
        let nearest = nearest_names(events, known.defined, &matcher.event_name);
        let hint = if nearest.is_empty() {
            String::new()
        } else {
            format!("; nearest: {}", nearest.join(", "))
        };
        problems.add(
            format!("{path}.event_name"),
            "UNKNOWN_EVENT_NAME",
            format!(
                "neither the event dictionary nor any stored event has the name {:?}{hint}",
                matcher.event_name
            ),
        );
        None
    };
    Condition {
        event,
        filters: filters_of(
            known,
            &matcher.filters,
            &format!("{path}.filters"),
            problems,
        ),
    }
}

/// The code `event` has in `dimension`'s column.
fn code_in(event: &Event, dimension: Dimension) -> u32 {
    let touch = event.touch;
    match dimension {
        Dimension::Event => event.event,
        Dimension::Channel => touch.channel,
        Dimension::Touchpoint => touch.touchpoint,
        Dimension::Source => touch.source,
        Dimension::TouchpointType => u32::from(touch.touchpoint_type),
        Dimension::Department => u32::from(touch.department),
        Dimension::ChannelTouchpoint => u32::MAX,
        Dimension::Property(slot) => event.properties.get(slot).copied().unwrap_or(0),
    }
}

/// Whether one event meets `condition` (for a single person's timeline; whole-tenant scans
/// go through the projection's compiled matcher instead).
pub fn matches(condition: &Condition, event: &Event) -> bool {
    condition.event.is_none_or(|code| code == event.event)
        && condition
            .filters
            .iter()
            .all(|filter| filter.codes.contains(code_in(event, filter.dimension)))
}

/// Qualifying activity: any of `matchers` (none: every event). Several matchers without
/// filters become one condition on the event column; a matcher with filters must stand
/// alone, since the projection's activity is one condition.
pub fn any_of(
    known: Known<'_>,
    matchers: &[Matcher],
    path: &str,
    problems: &mut Violations,
) -> Condition {
    match matchers {
        [] => Condition::any(),
        [single] => condition(known, single, &format!("{path}[0]"), problems),
        several => {
            if several
                .iter()
                .any(|m| !m.filters.is_empty() || m.event_name.is_empty())
            {
                problems.add(
                    path,
                    "UNSUPPORTED",
                    "several qualifying events must each name an event and carry no filters; use one event with filters instead",
                );
                return Condition::any();
            }
            let mut codes = CodeSet::default();
            for (index, matcher) in several.iter().enumerate() {
                let one = condition(known, matcher, &format!("{path}[{index}]"), problems);
                if let Some(code) = one.event {
                    codes.insert(code);
                }
            }
            Condition {
                event: None,
                filters: vec![Filter {
                    dimension: Dimension::Event,
                    codes,
                }],
            }
        }
    }
}

/// A scope's range and event conditions compiled for one query, with the query's cancel
/// flag; [`ScopeFor::scope`] lends them to the projection.
pub struct ScopeFor {
    range: Option<(i64, i64)>,
    events: Option<Condition>,
    /// Admits every person until the query is cancelled, then none (see `cancel`).
    persons: Box<dyn Fn(u64) -> bool + Send + Sync>,
}

impl std::fmt::Debug for ScopeFor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScopeFor")
            .field("range", &self.range)
            .field("events", &self.events)
            .finish_non_exhaustive()
    }
}

impl ScopeFor {
    /// Events in `range` (all, when `None`) meeting every filter, of the persons `run`
    /// admits, until its cancel flag is raised; a filter on a property the view does not
    /// keep is a violation of `scope.event_filters[i]`.
    pub fn new(
        known: Known<'_>,
        range: Option<(i64, i64)>,
        filters: &[FieldFilter],
        run: &RunContext,
    ) -> Result<Self, Violations> {
        let mut problems = Violations::default();
        let events = (!filters.is_empty()).then(|| Condition {
            event: None,
            filters: filters_of(known, filters, "scope.event_filters", &mut problems),
        });
        if !problems.is_empty() {
            return Err(problems);
        }
        let cancel = run.cancel.clone();
        let members = run.persons.clone();
        Ok(Self {
            range,
            events,
            persons: Box::new(move |person| {
                !cancel.is_cancelled() && members.as_ref().is_none_or(|m| m.contains(&person))
            }),
        })
    }

    /// The projection's scope.
    pub fn scope(&self) -> ProjectionScope<'_> {
        ProjectionScope {
            time_range: self
                .range
                .map(|(from_ms, to_ms)| TimeRange { from_ms, to_ms }),
            events: self.events.as_ref(),
            persons: Some(&*self.persons),
        }
    }
}

/// The column a breakdown reads; a property the view does not keep is a violation of
/// `path.field`.
pub fn breakdown_dimension(
    known: Known<'_>,
    field: &Field,
    path: &str,
    problems: &mut Violations,
) -> Option<Dimension> {
    let found = dimension(field, known.properties);
    if let (None, Field::Property(name)) = (found, field) {
        not_analysable(name, known.properties, format!("{path}.field"), problems);
    }
    found
}

/// The funnel over the projection's codes.
pub fn funnel(known: Known<'_>, funnel: &ValidFunnel) -> Result<FunnelSpec, Violations> {
    let mut problems = Violations::default();
    let steps = funnel
        .steps
        .iter()
        .enumerate()
        .map(|(index, (_, matcher))| {
            condition(
                known,
                matcher,
                &format!("funnel.steps[{index}].event"),
                &mut problems,
            )
        })
        .collect();
    let exclusions = funnel
        .exclusions
        .iter()
        .enumerate()
        .map(|(index, (matcher, from_step, to_step))| FunnelExclusion {
            range: ExclusionRange {
                from_step: *from_step,
                to_step: *to_step,
            },
            condition: condition(
                known,
                matcher,
                &format!("funnel.exclusions[{index}].event"),
                &mut problems,
            ),
        })
        .collect();
    let breakdown = funnel
        .breakdown
        .as_ref()
        .and_then(|(field, _, attribution)| {
            let dimension =
                breakdown_dimension(known, field, "funnel.breakdown.breakdown", &mut problems)?;
            Some(FunnelBreakdown {
                dimension,
                attribution: match attribution {
                    BreakdownAttribution::FirstTouch => Attribution::FirstTouch,
                    BreakdownAttribution::LastTouch => Attribution::LastTouch,
                    BreakdownAttribution::Step(step) => Attribution::Step((*step).max(1) as usize),
                    BreakdownAttribution::AllEvents => Attribution::AllEvents,
                },
            })
        });
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(FunnelSpec {
        steps,
        window_ms: funnel.window_ms,
        order: funnel.order,
        exclusions,
        breakdown,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter_of(operator: Operator, values: &[&str]) -> FieldFilter {
        FieldFilter {
            field: "channel".into(),
            operator,
            values: values.iter().map(|v| (*v).to_owned()).collect(),
        }
    }

    #[test]
    fn text_filters_follow_the_contract_on_missing_values() {
        let eq = filter_of(Operator::Equals, &["pos", "app"]);
        assert!(accepts(&eq, "pos", false) && !accepts(&eq, "web", false));
        assert!(!accepts(&eq, "", false) && !accepts(&eq, "POS", false));
        let ne = filter_of(Operator::NotEquals, &["pos"]);
        assert!(
            accepts(&ne, "", false) && accepts(&ne, "web", false) && !accepts(&ne, "pos", false)
        );
        let contains = filter_of(Operator::Contains, &["we"]);
        assert!(accepts(&contains, "wechat", false) && !accepts(&contains, "pos", false));
        let not_contains = filter_of(Operator::NotContains, &["we"]);
        assert!(accepts(&not_contains, "", false) && !accepts(&not_contains, "wechat", false));
        assert!(accepts(&filter_of(Operator::IsSet, &[]), "x", false));
        assert!(accepts(&filter_of(Operator::IsNotSet, &[]), "", false));
    }

    #[test]
    fn enum_columns_answer_to_short_and_full_names() {
        assert_eq!(enum_text(&Field::TouchpointType, 4), "after_sales");
        assert_eq!(enum_text(&Field::Department, 1), "marketing");
        assert_eq!(enum_text(&Field::Department, 0), "");
        assert_eq!(enum_text(&Field::Department, 200), "");
        let full = filter_of(Operator::Equals, &["TOUCHPOINT_TYPE_OFFLINE"]);
        assert!(accepts(&full, "offline", true) && !accepts(&full, "online", true));
        let short = filter_of(Operator::Equals, &["Marketing"]);
        assert!(accepts(&short, "marketing", true) && !accepts(&short, "", true));
        let dept = filter_of(Operator::NotEquals, &["DEPARTMENT_PRODUCT"]);
        assert!(!accepts(&dept, "product", true) && accepts(&dept, "", true));
    }

    #[test]
    fn the_nearest_names_are_the_closest_stored_ones() {
        let mut events = Dictionary::new("event_name", 100);
        for name in ["add_to_cart", "submit_order", "pay_order", "view_item"] {
            events.intern(name).ok();
        }
        assert_eq!(
            nearest_names(&events, &[], "add_to_krt"),
            vec!["add_to_cart"]
        );
        assert_eq!(nearest_names(&events, &[], "pay"), Vec::<String>::new());
        let defined = ["refund".to_owned()];
        assert_eq!(nearest_names(&events, &defined, "refnd"), vec!["refund"]);
        let nearest = nearest_names(&events, &defined, "submit_ordr");
        assert_eq!(nearest.first().map(String::as_str), Some("submit_order"));
    }
}
