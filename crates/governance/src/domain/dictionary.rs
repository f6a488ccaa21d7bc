//! The event dictionary: a tenant's canonical events, the names sources use
//! for them, the properties they carry and their touchpoint classification.
//!
//! Definitions are plain serde data: the draft and every published version
//! are stored as JSON, and the industry templates ship as JSON files in the
//! crate.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The value types a property can be declared with (`common.v1.ValueType`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ValueKind {
    /// Kept as delivered.
    #[default]
    Any,
    /// Text.
    String,
    /// A whole number.
    Integer,
    /// A decimal number.
    Decimal,
    /// True or false.
    Boolean,
    /// An instant, stored as RFC 3339 UTC.
    Timestamp,
    /// A list.
    List,
    /// An object.
    Object,
}

impl ValueKind {
    /// From the protobuf enum number (unknown numbers accept anything).
    pub fn from_proto(n: i32) -> Self {
        match n {
            1 => Self::String,
            2 => Self::Integer,
            3 => Self::Decimal,
            4 => Self::Boolean,
            5 => Self::Timestamp,
            6 => Self::List,
            7 => Self::Object,
            _ => Self::Any,
        }
    }

    /// The protobuf enum number.
    pub fn to_proto(self) -> i32 {
        match self {
            Self::Any => 0,
            Self::String => 1,
            Self::Integer => 2,
            Self::Decimal => 3,
            Self::Boolean => 4,
            Self::Timestamp => 5,
            Self::List => 6,
            Self::Object => 7,
        }
    }
}

/// Texts in the two languages every tenant reads.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Localized {
    /// Simplified Chinese.
    #[serde(default)]
    pub zh_cn: String,
    /// English.
    #[serde(default)]
    pub en: String,
}

/// A name a source (or every source) uses for a canonical event.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Alias {
    /// Source id; empty for every source.
    #[serde(default)]
    pub source: String,
    /// The name as sent.
    pub source_event_name: String,
    /// Source property name → canonical property name.
    #[serde(default)]
    pub property_renames: BTreeMap<String, String>,
}

/// A property a canonical event carries.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PropertySpec {
    /// Canonical property name.
    pub name: String,
    /// People's name for it.
    #[serde(default)]
    pub display_name: Localized,
    /// What it holds.
    #[serde(default)]
    pub description: String,
    /// Declared type; values are coerced to it.
    #[serde(default)]
    pub value_type: ValueKind,
    /// Missing, null or empty quarantines the event.
    #[serde(default)]
    pub required: bool,
    /// When non-empty, the only values allowed.
    #[serde(default)]
    pub allowed_values: Vec<serde_json::Value>,
    /// 0 as delivered, 1 pseudonymise, 2 drop (`PiiHandling`).
    #[serde(default)]
    pub pii: i32,
    /// Unit for people.
    #[serde(default)]
    pub unit: String,
}

/// Where an event sits among the brand's touchpoints.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Touchpoint {
    /// Channel override; empty keeps the event's.
    #[serde(default)]
    pub channel: String,
    /// Touchpoint within the channel; empty means the event name.
    #[serde(default)]
    pub touchpoint: String,
    /// `TouchpointType` number: 1 online, 2 offline, 3 media, 4 after-sales.
    #[serde(default)]
    pub touchpoint_type: i32,
    /// `Department` number: 1 marketing, 2 operations, 3 product, 4 executive.
    #[serde(default)]
    pub owning_department: i32,
}

/// One canonical event.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct EventDef {
    /// Canonical name, lower snake case.
    pub event_name: String,
    /// People's name.
    #[serde(default)]
    pub display_name: Localized,
    /// Meaning.
    #[serde(default)]
    pub description: String,
    /// Names sources use.
    #[serde(default)]
    pub aliases: Vec<Alias>,
    /// Properties.
    #[serde(default)]
    pub properties: Vec<PropertySpec>,
    /// Classification.
    #[serde(default)]
    pub touchpoint: Touchpoint,
    /// A conversion.
    #[serde(default)]
    pub conversion: bool,
    /// Property holding the monetary value.
    #[serde(default)]
    pub value_property: String,
    /// No longer expected.
    #[serde(default)]
    pub deprecated: bool,
    /// Canonical properties identifying a business record across sources.
    #[serde(default)]
    pub natural_key_properties: Vec<String>,
    /// May carry no identifier of a person (aggregate rows, anonymous
    /// business records).
    #[serde(default)]
    pub anonymous_allowed: bool,
    /// Template it came from (`industryTemplates/retail`).
    #[serde(default)]
    pub template: String,
}

/// A published (or draft) dictionary: canonical events by name.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Dictionary {
    /// Version number; 0 for the draft.
    pub version: i64,
    /// Events by canonical name.
    pub events: BTreeMap<String, EventDef>,
}

/// How a raw event name resolved.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Resolved<'a> {
    /// The canonical event.
    pub event: &'a EventDef,
    /// The alias that matched, if not the canonical name itself.
    pub alias: Option<&'a Alias>,
}

impl Dictionary {
    /// Resolves the name a source sent: an alias for that source first, then
    /// an alias for every source, then the canonical name itself.
    pub fn resolve(&self, source: &str, name: &str) -> Option<Resolved<'_>> {
        let name = name.trim();
        let mut any_source = None;
        for event in self.events.values() {
            for alias in &event.aliases {
                if alias.source_event_name.trim() != name {
                    continue;
                }
                if !alias.source.is_empty() && alias.source == source {
                    return Some(Resolved {
                        event,
                        alias: Some(alias),
                    });
                }
                if alias.source.is_empty() && any_source.is_none() {
                    any_source = Some(Resolved {
                        event,
                        alias: Some(alias),
                    });
                }
            }
        }
        any_source.or_else(|| {
            self.events
                .get(name)
                .map(|event| Resolved { event, alias: None })
        })
    }

    /// Problems that make the dictionary unpublishable: two events claiming
    /// the same (source, name) alias, or an alias equal to another event's
    /// canonical name for every source.
    pub fn conflicts(&self) -> Vec<String> {
        let mut seen: BTreeMap<(String, String), String> = BTreeMap::new();
        let mut problems = Vec::new();
        for event in self.events.values() {
            for alias in &event.aliases {
                let key = (
                    alias.source.clone(),
                    alias.source_event_name.trim().to_owned(),
                );
                if let Some(other) = seen.get(&key)
                    && other != &event.event_name
                {
                    problems.push(format!(
                        "alias {:?} (source {:?}) is used by both {} and {}",
                        key.1, key.0, other, event.event_name
                    ));
                }
                seen.insert(key.clone(), event.event_name.clone());
                if alias.source.is_empty()
                    && self.events.contains_key(&key.1)
                    && key.1 != event.event_name
                {
                    problems.push(format!(
                        "alias {:?} of {} is itself a canonical event",
                        key.1, event.event_name
                    ));
                }
            }
        }
        problems
    }
}

/// Checks a canonical event definition; returns (field, problem) pairs.
pub fn validate_event(def: &EventDef) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    if !is_snake_name(&def.event_name, 64) {
        problems.push((
            "canonical_event_id".to_owned(),
            "must be lower snake case, 1-64 characters".to_owned(),
        ));
    }
    if def.description.chars().count() > 2000 {
        problems.push((
            "canonical_event.description".to_owned(),
            "at most 2,000 characters".to_owned(),
        ));
    }
    if def.aliases.len() > 100 {
        problems.push((
            "canonical_event.aliases".to_owned(),
            "at most 100".to_owned(),
        ));
    }
    for (i, alias) in def.aliases.iter().enumerate() {
        if alias.source_event_name.trim().is_empty() {
            problems.push((
                format!("canonical_event.aliases[{i}].source_event_name"),
                "required".to_owned(),
            ));
        }
    }
    if def.properties.len() > 200 {
        problems.push((
            "canonical_event.properties".to_owned(),
            "at most 200".to_owned(),
        ));
    }
    for (i, p) in def.properties.iter().enumerate() {
        if !is_snake_name(&p.name, 64) {
            problems.push((
                format!("canonical_event.properties[{i}].name"),
                "must be lower snake case".to_owned(),
            ));
        }
    }
    for (i, k) in def.natural_key_properties.iter().enumerate() {
        if k.trim().is_empty() {
            problems.push((
                format!("canonical_event.natural_key_properties[{i}]"),
                "must not be empty".to_owned(),
            ));
        }
    }
    problems
}

/// Lower snake case: starts with a letter, then letters, digits, `_`.
pub fn is_snake_name(s: &str, max: usize) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some('a'..='z'))
        && s.len() <= max
        && chars.all(|c| matches!(c, 'a'..='z' | '0'..='9' | '_'))
}

/// A shipped industry template.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Template {
    /// Template id (`retail`).
    pub id: String,
    /// `Industry` number.
    pub industry: i32,
    /// Name.
    pub display_name: Localized,
    /// What it covers.
    pub description: Localized,
    /// The template's own revision.
    pub revision: String,
    /// The events.
    pub events: Vec<EventDef>,
}

const TEMPLATE_FILES: [&str; 4] = [
    include_str!("../../templates/retail.json"),
    include_str!("../../templates/healthcare.json"),
    include_str!("../../templates/transport.json"),
    include_str!("../../templates/manufacturing.json"),
];

/// The shipped templates, in industry order. A template file that does not
/// parse is a build defect caught by the tests, so it is skipped here.
pub fn templates() -> Vec<Template> {
    TEMPLATE_FILES
        .iter()
        .filter_map(|text| serde_json::from_str::<Template>(text).ok())
        .map(|mut t| {
            let name = format!("industryTemplates/{}", t.id);
            for e in &mut t.events {
                e.template.clone_from(&name);
            }
            t
        })
        .collect()
}

/// What applying a template to a draft changes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TemplateMerge {
    /// Events added.
    pub added: Vec<String>,
    /// Events changed.
    pub updated: Vec<String>,
    /// Events left as they were.
    pub unchanged: Vec<String>,
    /// The definitions to write (added and updated).
    pub writes: Vec<EventDef>,
}

/// Applies `template` to `draft`: in merge mode only missing events, aliases
/// and properties are added; in overwrite mode the template's definition
/// replaces the draft's.
pub fn apply_template(
    draft: &BTreeMap<String, EventDef>,
    template: &Template,
    overwrite: bool,
) -> TemplateMerge {
    let mut merge = TemplateMerge::default();
    for event in &template.events {
        match draft.get(&event.event_name) {
            None => {
                merge.added.push(event.event_name.clone());
                merge.writes.push(event.clone());
            }
            Some(existing) if overwrite => {
                if existing == event {
                    merge.unchanged.push(event.event_name.clone());
                } else {
                    merge.updated.push(event.event_name.clone());
                    merge.writes.push(event.clone());
                }
            }
            Some(existing) => {
                let mut next = existing.clone();
                for alias in &event.aliases {
                    if !next.aliases.iter().any(|a| {
                        a.source == alias.source && a.source_event_name == alias.source_event_name
                    }) {
                        next.aliases.push(alias.clone());
                    }
                }
                for prop in &event.properties {
                    if !next.properties.iter().any(|p| p.name == prop.name) {
                        next.properties.push(prop.clone());
                    }
                }
                if &next == existing {
                    merge.unchanged.push(event.event_name.clone());
                } else {
                    merge.updated.push(event.event_name.clone());
                    merge.writes.push(next);
                }
            }
        }
    }
    merge
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dict() -> Dictionary {
        let mut events = BTreeMap::new();
        for t in templates().into_iter().filter(|t| t.id == "retail") {
            for e in t.events {
                events.insert(e.event_name.clone(), e);
            }
        }
        Dictionary { version: 1, events }
    }

    #[test]
    fn every_template_parses_and_is_consistent() {
        let all = templates();
        assert_eq!(all.len(), TEMPLATE_FILES.len());
        for t in &all {
            let d = Dictionary {
                version: 1,
                events: t
                    .events
                    .iter()
                    .map(|e| (e.event_name.clone(), e.clone()))
                    .collect(),
            };
            assert_eq!(d.events.len(), t.events.len(), "{} repeats a name", t.id);
            assert!(d.conflicts().is_empty(), "{}: {:?}", t.id, d.conflicts());
            for e in &t.events {
                assert!(validate_event(e).is_empty(), "{}: {}", t.id, e.event_name);
            }
        }
    }

    #[test]
    fn retail_template_knows_the_generator_aliases() {
        let d = dict();
        for (alias, canonical) in [
            ("SubmitOrder", "submit_order"),
            ("place_order", "submit_order"),
            ("payment_success", "pay_order"),
            ("add-to-cart", "add_to_cart"),
            ("viewItem", "view_item"),
            ("signin", "login"),
            ("do_search", "search"),
            ("pos_order", "purchase"),
            ("member_order", "purchase"),
        ] {
            let r = d.resolve("any", alias).map(|r| r.event.event_name.as_str());
            assert_eq!(r, Some(canonical), "{alias}");
        }
        assert!(d.resolve("any", "no_such_event").is_none());
    }

    #[test]
    fn source_specific_alias_wins() {
        let mut d = dict();
        let mut special = EventDef {
            event_name: "special".into(),
            ..Default::default()
        };
        special.aliases.push(Alias {
            source: "pos".into(),
            source_event_name: "SubmitOrder".into(),
            property_renames: BTreeMap::new(),
        });
        d.events.insert("special".into(), special);
        assert_eq!(
            d.resolve("pos", "SubmitOrder")
                .map(|r| r.event.event_name.as_str()),
            Some("special")
        );
        assert_eq!(
            d.resolve("web", "SubmitOrder")
                .map(|r| r.event.event_name.as_str()),
            Some("submit_order")
        );
    }

    #[test]
    fn merge_adds_only_what_is_missing() {
        let retail = templates().into_iter().find(|t| t.id == "retail");
        let Some(retail) = retail else {
            panic!("retail template")
        };
        let empty = BTreeMap::new();
        let first = apply_template(&empty, &retail, false);
        assert_eq!(first.added.len(), retail.events.len());
        let draft: BTreeMap<_, _> = first
            .writes
            .into_iter()
            .map(|e| (e.event_name.clone(), e))
            .collect();
        let second = apply_template(&draft, &retail, false);
        assert!(second.added.is_empty() && second.updated.is_empty());
        assert_eq!(second.unchanged.len(), retail.events.len());
    }
}
