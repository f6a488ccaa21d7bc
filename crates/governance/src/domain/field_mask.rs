//! The field mask of an update: which fields of a canonical event a caller may change, and
//! copying them from the incoming definition into the stored one.

use super::dictionary::EventDef;
use crate::error::GovernanceError;

/// Copies the masked field `path` of `from` into `into`.
pub fn apply_path(into: &mut EventDef, from: &EventDef, path: &str) -> Result<(), GovernanceError> {
    match path {
        "display_name" => into.display_name = from.display_name.clone(),
        "description" => into.description.clone_from(&from.description),
        "aliases" => into.aliases = from.aliases.clone(),
        "properties" => into.properties = from.properties.clone(),
        "touchpoint" => into.touchpoint = from.touchpoint.clone(),
        "touchpoint.channel" => into.touchpoint.channel.clone_from(&from.touchpoint.channel),
        "touchpoint.touchpoint" => into
            .touchpoint
            .touchpoint
            .clone_from(&from.touchpoint.touchpoint),
        "touchpoint.touchpoint_type" => {
            into.touchpoint.touchpoint_type = from.touchpoint.touchpoint_type;
        }
        "touchpoint.owning_department" => {
            into.touchpoint.owning_department = from.touchpoint.owning_department;
        }
        "conversion" => into.conversion = from.conversion,
        "value_property" => into.value_property.clone_from(&from.value_property),
        "state" => into.deprecated = from.deprecated,
        "natural_key_properties" => {
            into.natural_key_properties = from.natural_key_properties.clone();
        }
        "anonymous_allowed" => into.anonymous_allowed = from.anonymous_allowed,
        "*" => {
            for p in [
                "display_name",
                "description",
                "aliases",
                "properties",
                "touchpoint",
                "conversion",
                "value_property",
                "state",
                "natural_key_properties",
                "anonymous_allowed",
            ] {
                apply_path(into, from, p)?;
            }
        }
        "name" | "event_name" | "template" | "version" | "create_time" | "update_time" | "etag" => {
            return Err(GovernanceError::invalid(
                "update_mask",
                "IMMUTABLE_FIELD",
                &format!("{path} cannot be changed"),
            ));
        }
        other => {
            return Err(GovernanceError::invalid(
                "update_mask",
                "UNKNOWN_FIELD",
                &format!("{other} is not a field of a canonical event"),
            ));
        }
    }
    Ok(())
}
