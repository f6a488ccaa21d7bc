//! Where a visit came from: the `utm_*` tags of its landing URL, and ad click ids. A web SDK
//! often sends the landing page's URL and leaves the campaign tags inside it, and an ad
//! platform that tags its landing pages itself (auto-tagging) sends a click id such as `gclid`
//! or `gdt_vid` and no `utm_*` parameter at all: without a rule, a visit paid for by an ad
//! reads as a visit from nowhere.
//!
//! The rule, in order of trust, each step only filling what is still unset:
//! 1. `utm_*` properties the sender set stay as they are;
//! 2. the `utm_*` parameters of the landing URL's query (`properties.url`,
//!    `properties.search`, `context.page.url`, `context.page.search`; the first that has a
//!    query) become the properties of the same names;
//! 3. a known click id, among the top-level properties or in that query, names its platform
//!    as `utm_source` and the platform's medium as `utm_medium`.
//!
//! Nothing the sender sent is changed or removed: the URL and the click id stay as sent.

use serde_json::{Map, Value};

use super::value::is_blank;

/// The property a click id is read into as the traffic source.
pub const SOURCE_PROPERTY: &str = "utm_source";
/// The property a click id is read into as the medium.
pub const MEDIUM_PROPERTY: &str = "utm_medium";

/// The campaign tags read from a landing URL's query into properties of the same names.
pub const UTM_PARAMETERS: [&str; 5] = [
    SOURCE_PROPERTY,
    MEDIUM_PROPERTY,
    "utm_campaign",
    "utm_term",
    "utm_content",
];

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

/// Where the landing URL (or its query alone) may be, as (area, field): the first holding a
/// query is read.
const LANDING_FIELDS: [(Area, &str); 4] = [
    (Area::Properties, "url"),
    (Area::Properties, "search"),
    (Area::ContextPage, "url"),
    (Area::ContextPage, "search"),
];

#[derive(Debug, Clone, Copy)]
enum Area {
    Properties,
    ContextPage,
}

/// What named an event's source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamedBy {
    /// The landing URL's `utm_source`.
    LandingUrl,
    /// A click id, by its parameter.
    ClickId(&'static str),
}

/// Fills the unset `utm_*` properties from the landing URL, then names the source from a
/// click id when it is still unset; returns what named the source, if anything did here.
pub fn name_source(
    properties: &mut Map<String, Value>,
    context: &Map<String, Value>,
) -> Option<NamedBy> {
    let query = landing_query(properties, context);
    let had_source = is_set(properties, SOURCE_PROPERTY);
    for (name, value) in &query {
        if UTM_PARAMETERS.contains(&name.as_str())
            && !value.trim().is_empty()
            && !is_set(properties, name)
        {
            properties.insert(name.clone(), Value::String(value.clone()));
        }
    }
    if is_set(properties, SOURCE_PROPERTY) {
        return (!had_source).then_some(NamedBy::LandingUrl);
    }
    let in_query = |param: &str| {
        query
            .iter()
            .any(|(name, value)| name == param && !value.trim().is_empty())
    };
    let (param, source, medium) = CLICK_IDS
        .iter()
        .find(|(param, _, _)| is_set(properties, param) || in_query(param))?;
    properties.insert(
        SOURCE_PROPERTY.to_owned(),
        Value::String((*source).to_owned()),
    );
    if !is_set(properties, MEDIUM_PROPERTY) {
        properties.insert(
            MEDIUM_PROPERTY.to_owned(),
            Value::String((*medium).to_owned()),
        );
    }
    Some(NamedBy::ClickId(param))
}

/// A property the sender set to something other than null or blank text.
fn is_set(properties: &Map<String, Value>, name: &str) -> bool {
    properties.get(name).is_some_and(|v| !is_blank(v))
}

/// The decoded parameters of the first landing field that holds a query (`?…`, up to any
/// `#`); none when no field does.
fn landing_query(
    properties: &Map<String, Value>,
    context: &Map<String, Value>,
) -> Vec<(String, String)> {
    let page = context.get("page").and_then(Value::as_object);
    LANDING_FIELDS
        .iter()
        .filter_map(|(area, field)| match area {
            Area::Properties => properties.get(*field),
            Area::ContextPage => page.and_then(|p| p.get(*field)),
        })
        .filter_map(Value::as_str)
        .find_map(|text| {
            let (_, query) = text.split_once('?')?;
            let query = query.split('#').next().unwrap_or_default();
            Some(
                url::form_urlencoded::parse(query.as_bytes())
                    .map(|(name, value)| (name.into_owned(), value.into_owned()))
                    .collect(),
            )
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]

    use serde_json::json;

    use super::*;

    fn props(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap()
    }

    fn named(mut p: Map<String, Value>, context: Value) -> (Option<NamedBy>, Map<String, Value>) {
        let by = name_source(&mut p, &props(context));
        (by, p)
    }

    #[test]
    fn a_click_id_alone_names_platform_and_medium() {
        let (by, p) = named(
            props(json!({"gdt_vid": "wx0abc", "page": "/home"})),
            json!({}),
        );
        assert_eq!(by, Some(NamedBy::ClickId("gdt_vid")));
        assert_eq!(
            p,
            props(json!({"gdt_vid": "wx0abc", "page": "/home",
                "utm_source": "tencent_ads", "utm_medium": "cpc"}))
        );
        let (by, p) = named(
            props(json!({"fbclid": "IwAR1", "utm_medium": "email"})),
            json!({}),
        );
        assert_eq!(by, Some(NamedBy::ClickId("fbclid")));
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
            json!({"url": "https://shop.example/p/1"}),
            json!({"url": "https://shop.example/p/1?utm_source=ads", "utm_source": "crm"}),
            json!({}),
        ] {
            let (by, p) = named(props(sent.clone()), json!({}));
            assert_eq!(by, None, "{sent}");
            assert_eq!(Value::Object(p), sent);
        }
        // A blank source is no source.
        let (by, p) = named(props(json!({"bd_vid": "x1", "utm_source": ""})), json!({}));
        assert_eq!(by, Some(NamedBy::ClickId("bd_vid")));
        assert_eq!(p["utm_source"], "baidu");
    }

    #[test]
    fn the_first_listed_click_id_wins() {
        let (by, p) = named(props(json!({"gclid": "g", "gdt_vid": "t"})), json!({}));
        assert_eq!(by, Some(NamedBy::ClickId("gdt_vid")));
        assert_eq!(p["utm_source"], "tencent_ads");
    }

    #[test]
    fn the_landing_urls_tags_fill_what_the_properties_leave_unset() {
        // Percent-encoded and `+`-encoded values are decoded; a fragment is not the query.
        let url = "https://shop.example/landing?utm_source=wechat_oa&utm_medium=article\
                   &utm_campaign=%E5%8F%8C%E5%8D%81%E4%B8%80&utm_content=top+banner#reviews";
        let (by, p) = named(props(json!({"url": url, "utm_medium": "menu"})), json!({}));
        assert_eq!(by, Some(NamedBy::LandingUrl));
        assert_eq!(p["utm_source"], "wechat_oa");
        assert_eq!(
            p["utm_medium"], "menu",
            "the property set wins over the URL"
        );
        assert_eq!(p["utm_campaign"], "双十一");
        assert_eq!(p["utm_content"], "top banner");
        assert_eq!(p["url"], url, "the URL stays as sent");
        // The page context of a web SDK, and a search string alone.
        let context = json!({"page": {"url": "https://m.shop.example/?gclid=Cj0KCQ&x=1"}});
        let (by, p) = named(props(json!({"path": "/"})), context);
        assert_eq!(by, Some(NamedBy::ClickId("gclid")));
        assert_eq!(
            (&p["utm_source"], &p["utm_medium"]),
            (&json!("google"), &json!("cpc"))
        );
        assert!(
            !p.contains_key("gclid"),
            "a click id in the URL is read, not copied"
        );
        let (by, p) = named(
            props(json!({"search": "?utm_source=sms&utm_term="})),
            json!({}),
        );
        assert_eq!(by, Some(NamedBy::LandingUrl));
        assert!(!p.contains_key("utm_term"), "a blank tag is no tag");
        // A tag in the URL beats a click id in the same URL.
        let both = json!({"url": "/l?gclid=Cj0&utm_source=partner"});
        let (by, p) = named(props(both), json!({}));
        assert_eq!(by, Some(NamedBy::LandingUrl));
        assert_eq!(p["utm_source"], "partner");
        assert!(!p.contains_key("utm_medium"));
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
