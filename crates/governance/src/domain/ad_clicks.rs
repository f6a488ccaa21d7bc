//! Ad click ids as traffic sources. An ad platform that tags its landing pages itself
//! (auto-tagging) sends a click id such as `gclid` or `gdt_vid` and no `utm_*` parameters:
//! without a rule, a visit paid for by an ad reads as a visit from nowhere. Where an event
//! names no `utm_source`, a known click id among its top-level properties gives it the
//! platform as `utm_source` and the platform's medium as `utm_medium` (when that is unset
//! too). The click id itself stays as sent. A source named by the sender always wins: a
//! campaign tagged by hand knows more than a click id does.

use serde_json::{Map, Value};

use super::value::is_blank;

/// The property a click id is read into as the traffic source.
pub const SOURCE_PROPERTY: &str = "utm_source";
/// The property a click id is read into as the medium.
pub const MEDIUM_PROPERTY: &str = "utm_medium";

/// (click id parameter, source, medium), checked in this order. Only parameters the platforms
/// reserve for their own clicks are listed: a generic name such as `clickid` or `callback`
/// says nothing about who sent it.
pub const CLICK_IDS: [(&str, &str, &str); 10] = [
    // Tencent Ads (广点通): WeChat Moments, official accounts, QQ.
    ("gdt_vid", "tencent_ads", "cpc"),
    ("qz_gdt", "tencent_ads", "cpc"),
    // Baidu search and feed ads (百度营销).
    ("bd_vid", "baidu", "cpc"),
    // Google Ads: web, iOS app-to-web and web-to-app campaigns, Display & Video 360.
    ("gclid", "google", "cpc"),
    ("gbraid", "google", "cpc"),
    ("wbraid", "google", "cpc"),
    ("dclid", "google", "display"),
    ("msclkid", "bing", "cpc"),
    ("ttclid", "tiktok", "cpc"),
    // Facebook appends it to every outbound link, paid or not: a social visit, not a paid one.
    ("fbclid", "facebook", "social"),
];

/// Names the traffic source of an event with a known click id and no `utm_source`; returns
/// the click id parameter that named it, if one did.
pub fn name_source(properties: &mut Map<String, Value>) -> Option<&'static str> {
    if properties
        .get(SOURCE_PROPERTY)
        .is_some_and(|v| !is_blank(v))
    {
        return None;
    }
    let (param, source, medium) = CLICK_IDS
        .iter()
        .find(|(param, _, _)| properties.get(*param).is_some_and(|v| !is_blank(v)))?;
    properties.insert(
        SOURCE_PROPERTY.to_owned(),
        Value::String((*source).to_owned()),
    );
    if properties.get(MEDIUM_PROPERTY).is_none_or(is_blank) {
        properties.insert(
            MEDIUM_PROPERTY.to_owned(),
            Value::String((*medium).to_owned()),
        );
    }
    Some(param)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use serde_json::json;

    use super::*;

    fn props(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    #[test]
    fn a_click_id_alone_names_platform_and_medium() {
        let mut p = props(json!({"gdt_vid": "wx0abc", "page": "/home"}));
        assert_eq!(name_source(&mut p), Some("gdt_vid"));
        assert_eq!(
            p,
            props(json!({"gdt_vid": "wx0abc", "page": "/home",
                "utm_source": "tencent_ads", "utm_medium": "cpc"}))
        );
        let mut p = props(json!({"fbclid": "IwAR1", "utm_medium": "email"}));
        assert_eq!(name_source(&mut p), Some("fbclid"));
        assert_eq!(p["utm_source"], "facebook");
        assert_eq!(p["utm_medium"], "email", "a medium sent is kept");
    }

    #[test]
    fn a_named_source_or_a_blank_click_id_changes_nothing() {
        for sent in [
            json!({"gclid": "Cj0", "utm_source": "newsletter"}),
            json!({"gclid": "  "}),
            json!({"gclid": null}),
            json!({"clickid": "generic"}),
            json!({}),
        ] {
            let mut p = props(sent.clone());
            assert_eq!(name_source(&mut p), None, "{sent}");
            assert_eq!(Value::Object(p), sent);
        }
        // A blank source is no source.
        let mut p = props(json!({"bd_vid": "x1", "utm_source": ""}));
        assert_eq!(name_source(&mut p), Some("bd_vid"));
        assert_eq!(p["utm_source"], "baidu");
    }

    #[test]
    fn the_first_listed_click_id_wins() {
        let mut p = props(json!({"gclid": "g", "gdt_vid": "t"}));
        assert_eq!(name_source(&mut p), Some("gdt_vid"));
        assert_eq!(p["utm_source"], "tencent_ads");
    }

    #[test]
    fn every_listed_parameter_is_distinct_and_lower_case() {
        let mut seen = std::collections::HashSet::new();
        for (param, source, medium) in CLICK_IDS {
            assert!(seen.insert(param), "{param} twice");
            for text in [param, source, medium] {
                assert_eq!(text, text.to_lowercase());
            }
        }
    }
}
