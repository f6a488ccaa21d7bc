//! The identifiers of an event: top-level ids and the identifier list
//! normalised, placeholders and blocked values removed, direct identifiers
//! pseudonymised with their masked display forms.

use touchline_proto::common::v1::Identifier;
use touchline_proto::governance::v1::MaskedIdentifier;

use super::mapping::Working;
use super::pii::{self, PrivacySettings, TenantKey};

/// The identifiers of one event after normalisation.
pub(crate) struct Ids {
    pub(crate) kept: Vec<Identifier>,
    pub(crate) masked: Vec<MaskedIdentifier>,
    pub(crate) blocked: i32,
    pub(crate) invalid: i32,
    pub(crate) first_invalid_field: String,
    /// How many identifiers the event carried when that is over
    /// [`touchline_bounds::MAX_IDENTIFIERS_PER_EVENT`]: the event is quarantined.
    pub(crate) too_many: Option<usize>,
}

/// Normalises, blocks and pseudonymises every identifier of `w`.
#[expect(
    clippy::too_many_lines,
    reason = "collects identifiers from every place an event carries them, in precedence order, in one pass"
)]
pub(crate) fn identifiers(w: &Working, privacy: &PrivacySettings, key: &TenantKey) -> Ids {
    let mut out = Ids {
        kept: Vec::new(),
        masked: Vec::new(),
        blocked: 0,
        invalid: 0,
        first_invalid_field: "identifiers".to_owned(),
        too_many: None,
    };
    let top = [
        ("anonymous_id", &w.anonymous_id, "anonymous_id"),
        ("user_id", &w.user_id, "user_id"),
        ("user_id", &w.previous_id, "previous_id"),
    ];
    // A top-level id the identifiers repeat (with their scope) is one
    // identifier, not two.
    let repeated = |kind: &str, value: &str| {
        w.identifiers
            .iter()
            .any(|(t, v, _)| t.trim().eq_ignore_ascii_case(kind) && v.trim() == value.trim())
    };
    let mut candidates: Vec<(String, String, String, String)> = top
        .iter()
        .filter(|(t, v, _)| !v.trim().is_empty() && !repeated(t, v))
        .map(|(t, v, f)| {
            (
                (*t).to_owned(),
                (*v).clone(),
                String::new(),
                (*f).to_owned(),
            )
        })
        .collect();
    for (i, (t, v, s)) in w.identifiers.iter().enumerate() {
        candidates.push((
            t.trim().to_lowercase(),
            v.clone(),
            s.trim().to_owned(),
            format!("identifiers[{i}]"),
        ));
    }
    if candidates.len() > touchline_bounds::MAX_IDENTIFIERS_PER_EVENT {
        out.too_many = Some(candidates.len());
        return out;
    }
    for (kind, value, scope, field) in candidates {
        if kind.is_empty() || value.trim().is_empty() {
            continue;
        }
        // What identity and modeling cannot hold (a NUL in a type or scope, a value of
        // thousands of characters) is dropped here and counted, like a value that cannot be
        // normalised, so it never reaches the stages after this one.
        if let Some((part, _)) = touchline_bounds::check_identifier(&kind, &scope, value.trim()) {
            note_invalid(&mut out, format!("{field}.{part}"));
            continue;
        }
        // An OpenID is unique only within its app: without the app's scope it names nobody.
        if kind == "wechat_openid" && scope.is_empty() {
            note_invalid(&mut out, format!("{field}.scope"));
            continue;
        }
        let direct = privacy.direct_types.contains(&kind);
        if direct && pii::is_pseudonym(value.trim()) {
            // Already pseudonymised (a replayed clean event); keep as is.
            push_unique(
                &mut out.kept,
                Identifier {
                    r#type: kind,
                    value: value.trim().to_owned(),
                    scope,
                },
            );
            continue;
        }
        let normalised = match pii::normalise(&kind, &value, &privacy.default_country_code) {
            Ok(n) => n,
            Err(_) => {
                note_invalid(&mut out, field);
                continue;
            }
        };
        // A phone or an email under another type (`user_id`, a source's own id) is personal
        // data all the same: it is hashed as what it is, so the same address links whatever
        // field carried it.
        let detected = if direct {
            None
        } else {
            pii::detect_direct(&normalised)
        };
        let is_detected = detected.is_some();
        let (pii_kind, normalised) = match detected {
            Some((k, n)) => (k, n),
            None => (kind.as_str(), normalised),
        };
        if pii::is_blocked(pii_kind, &normalised, privacy) {
            out.blocked += 1;
            continue;
        }
        let direct = direct || is_detected;
        let stored = if direct {
            pii::pseudonymise(key, pii_kind, &normalised)
        } else {
            normalised.clone()
        };
        let id = Identifier {
            r#type: kind.clone(),
            value: stored.clone(),
            scope,
        };
        if push_unique(&mut out.kept, id) && direct {
            out.masked.push(MaskedIdentifier {
                r#type: kind.clone(),
                value: stored,
                masked: pii::mask(pii_kind, &normalised),
            });
        }
    }
    out
}

fn note_invalid(out: &mut Ids, field: String) {
    if out.invalid == 0 {
        out.first_invalid_field = field;
    }
    out.invalid += 1;
}

fn push_unique(list: &mut Vec<Identifier>, id: Identifier) -> bool {
    if list.contains(&id) {
        return false;
    }
    list.push(id);
    true
}
