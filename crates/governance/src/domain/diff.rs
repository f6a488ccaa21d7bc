//! How the outcome of cleaning one raw event differs between two runs:
//! the comparison a reprocessing job sums into its difference.

use touchline_proto::governance::v1::{CleanEvent, QuarantineReason};

/// One run's outcome for an event.
#[derive(Debug, Clone, PartialEq)]
pub enum Side {
    /// A clean record; `None` when it was a natural-key duplicate (counted,
    /// nothing published).
    Clean(Option<Box<CleanEvent>>),
    /// Quarantined with this first reason.
    Quarantined(QuarantineReason),
}

/// The kind of difference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Exactly the same.
    Unchanged,
    /// Was quarantined, now clean.
    NewlyClean,
    /// Was clean, now quarantined.
    NewlyQuarantined,
    /// Clean both times, another canonical name.
    EventNameChanged,
    /// Clean both times, other channel or classification.
    TouchpointChanged,
    /// Clean both times, other properties, identifiers or time.
    PropertiesChanged,
    /// Quarantined both times, another first reason.
    ReasonChanged,
}

/// The change from `before` to `after`, and the clean fields that differ.
pub fn compare(before: &Side, after: &Side) -> (Change, Vec<String>) {
    match (before, after) {
        (Side::Quarantined(a), Side::Quarantined(b)) if a == b => (Change::Unchanged, Vec::new()),
        (Side::Quarantined(_), Side::Quarantined(_)) => (Change::ReasonChanged, Vec::new()),
        (Side::Quarantined(_), Side::Clean(_)) => (Change::NewlyClean, Vec::new()),
        (Side::Clean(_), Side::Quarantined(_)) => (Change::NewlyQuarantined, Vec::new()),
        // A duplicate published nothing to compare with.
        (Side::Clean(None), Side::Clean(_)) | (Side::Clean(_), Side::Clean(None)) => {
            (Change::Unchanged, Vec::new())
        }
        (Side::Clean(Some(a)), Side::Clean(Some(b))) => {
            let fields = changed_fields(a, b);
            let change = if a.event_name != b.event_name {
                Change::EventNameChanged
            } else if fields.iter().any(|f| {
                matches!(
                    f.as_str(),
                    "channel" | "touchpoint" | "touchpoint_type" | "owning_department"
                )
            }) {
                Change::TouchpointChanged
            } else if fields.is_empty() {
                Change::Unchanged
            } else {
                Change::PropertiesChanged
            };
            (change, fields)
        }
    }
}

/// Paths of the clean fields that differ (bookkeeping such as sequences,
/// the dictionary version and trace context is not compared).
fn changed_fields(a: &CleanEvent, b: &CleanEvent) -> Vec<String> {
    let mut out = Vec::new();
    let mut field = |name: &str, differs: bool| {
        if differs {
            out.push(name.to_owned());
        }
    };
    field("event_name", a.event_name != b.event_name);
    field("channel", a.channel != b.channel);
    field("touchpoint", a.touchpoint != b.touchpoint);
    field("touchpoint_type", a.touchpoint_type != b.touchpoint_type);
    field(
        "owning_department",
        a.owning_department != b.owning_department,
    );
    field("event_time", a.event_time != b.event_time);
    field("identifiers", a.identifiers != b.identifiers);
    field("traits", a.traits != b.traits);
    field("conversion", a.conversion != b.conversion);
    field("value", a.value.to_bits() != b.value.to_bits());
    let empty = std::collections::BTreeMap::new();
    let pa = a.properties.as_ref().map_or(&empty, |p| &p.fields);
    let pb = b.properties.as_ref().map_or(&empty, |p| &p.fields);
    let mut keys: Vec<&String> = pa.keys().chain(pb.keys()).collect();
    keys.sort();
    keys.dedup();
    for k in keys {
        if pa.get(k) != pb.get(k) {
            out.push(format!("properties.{k}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean(name: &str, channel: &str, sku: &str) -> Side {
        Side::Clean(Some(Box::new(CleanEvent {
            event_name: name.into(),
            channel: channel.into(),
            sequence: 9,
            dictionary_version: 1,
            properties: Some(prost_types::Struct {
                fields: [("sku".to_owned(), prost_types::Value::from(sku.to_owned()))]
                    .into_iter()
                    .collect(),
            }),
            ..Default::default()
        })))
    }

    #[test]
    fn classifies_each_kind_of_change() {
        let q = |r| Side::Quarantined(r);
        let base = clean("view_item", "app", "S-1");
        assert_eq!(compare(&base, &base).0, Change::Unchanged);
        let mut later = clean("view_item", "app", "S-1");
        if let Side::Clean(Some(e)) = &mut later {
            e.sequence = 40;
            e.dictionary_version = 2;
        }
        assert_eq!(
            compare(&base, &later).0,
            Change::Unchanged,
            "bookkeeping only"
        );
        assert_eq!(
            compare(&base, &clean("product_view", "app", "S-1")).0,
            Change::EventNameChanged
        );
        assert_eq!(
            compare(&base, &clean("view_item", "web", "S-1")).0,
            Change::TouchpointChanged
        );
        let (change, fields) = compare(&base, &clean("view_item", "app", "S-2"));
        assert_eq!(change, Change::PropertiesChanged);
        assert_eq!(fields, vec!["properties.sku".to_owned()]);
        let unknown = q(QuarantineReason::UnknownEvent);
        assert_eq!(compare(&unknown, &base).0, Change::NewlyClean);
        assert_eq!(compare(&base, &unknown).0, Change::NewlyQuarantined);
        assert_eq!(
            compare(&unknown, &q(QuarantineReason::NoIdentifier)).0,
            Change::ReasonChanged
        );
        assert_eq!(compare(&unknown, &unknown).0, Change::Unchanged);
    }
}
