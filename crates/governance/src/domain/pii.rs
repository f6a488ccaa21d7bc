//! Identifier normalisation, placeholder blocking, pseudonymisation and
//! masking.
//!
//! - Phones become E.164. Numbers without a country code take the tenant's
//!   default (86 unless configured). Chinese numbers must be mobile numbers
//!   (`1[3-9]` + 9 digits): landlines are shared switchboards, useless for
//!   joining people, and accepting them would let a mistyped mobile with a
//!   leading 0 pass as a landline.
//! - Emails are trimmed and lower-cased and need a local part and a dotted
//!   domain; other identifiers are trimmed.
//! - An identifier that cannot be normalised is dropped from the event and
//!   counted (`CleanEvent.invalid_identifiers_dropped`); the event is
//!   quarantined with INVALID_IDENTIFIER only when nothing else identifies
//!   the person. A mistyped phone must not lose the purchase it came with.
//! - Placeholder values (`unknown`, `13800000000`, all zeros, ...) and the
//!   tenant's blocked values are removed and counted: identity only ever
//!   sees pseudonyms, so this is the last place they can be recognised.
//! - Direct identifiers (phone, email and the types a tenant adds) are
//!   stored only as `k{version}:{hex HMAC-SHA256(key, type ":" value)}`
//!   under the tenant's current key, with a masked form for display.

use std::collections::BTreeSet;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The identifier types stored only as pseudonyms unless a tenant adds more.
pub const DEFAULT_DIRECT_TYPES: [&str; 2] = ["phone", "email"];

/// Values that never identify a person, whatever their type (compared after
/// normalisation, case-insensitively).
pub const DEFAULT_PLACEHOLDERS: [&str; 14] = [
    "unknown",
    "null",
    "(null)",
    "nil",
    "none",
    "undefined",
    "n/a",
    "na",
    "-",
    "test",
    "anonymous",
    "guest",
    "+8613800000000",
    "+8613800138000",
];

/// A tenant's privacy settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrivacySettings {
    /// Country calling code for phones without one, digits only.
    pub default_country_code: String,
    /// Identifier types stored only as pseudonyms.
    pub direct_types: BTreeSet<String>,
    /// Extra blocked values: (type or empty for every type, normalised value).
    pub blocked: BTreeSet<(String, String)>,
}

impl Default for PrivacySettings {
    fn default() -> Self {
        Self {
            default_country_code: "86".to_owned(),
            direct_types: DEFAULT_DIRECT_TYPES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
            blocked: BTreeSet::new(),
        }
    }
}

/// A tenant's pseudonymisation key.
#[derive(Clone, PartialEq, Eq)]
pub struct TenantKey {
    /// Version, from 1; rotation adds the next.
    pub version: i32,
    /// The secret (32 random bytes).
    pub secret: Vec<u8>,
}

impl std::fmt::Debug for TenantKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantKey")
            .field("version", &self.version)
            .finish_non_exhaustive()
    }
}

/// Normalises a value for its type; `Err` says why it cannot be.
pub fn normalise(kind: &str, value: &str, default_cc: &str) -> Result<String, String> {
    let value: String = value.chars().filter(|c| !c.is_control()).collect();
    let value = value.trim();
    if value.is_empty() {
        return Err("empty".to_owned());
    }
    match kind {
        "phone" | "mobile" => normalise_phone(value, default_cc),
        "email" => normalise_email(value),
        _ => Ok(value.to_owned()),
    }
}

/// A phone number in E.164, or why not.
pub fn normalise_phone(raw: &str, default_cc: &str) -> Result<String, String> {
    let compact: String = raw
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.' | '\u{3000}'))
        .collect();
    let (international, digits) = if let Some(rest) = compact.strip_prefix('+') {
        (true, rest.to_owned())
    } else if let Some(rest) = compact.strip_prefix("00") {
        (true, rest.to_owned())
    } else {
        (false, compact)
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("a phone number holds digits only".to_owned());
    }
    let (cc, national) = if international {
        match digits.strip_prefix("86") {
            Some(n) => ("86".to_owned(), n.to_owned()),
            None => return generic_e164(&digits),
        }
    } else if default_cc == "86" {
        match digits.strip_prefix("86") {
            Some(n) if digits.len() == 13 => ("86".to_owned(), n.to_owned()),
            _ => ("86".to_owned(), digits),
        }
    } else {
        let national = digits.trim_start_matches('0').to_owned();
        return generic_e164(&format!("{default_cc}{national}"));
    };
    if cc == "86" {
        let b = national.as_bytes();
        let mobile = b.len() == 11 && b[0] == b'1' && (b'3'..=b'9').contains(&b[1]);
        if !mobile {
            return Err("not a mainland China mobile number (11 digits starting 13-19)".to_owned());
        }
    }
    Ok(format!("+{cc}{national}"))
}

fn generic_e164(digits: &str) -> Result<String, String> {
    if (8..=15).contains(&digits.len()) && !digits.starts_with('0') {
        Ok(format!("+{digits}"))
    } else {
        Err("not an E.164 number (8-15 digits with the country code)".to_owned())
    }
}

fn normalise_email(raw: &str) -> Result<String, String> {
    let email = raw.to_lowercase();
    let Some((local, domain)) = email.split_once('@') else {
        return Err("an email needs an @".to_owned());
    };
    let ok = !local.is_empty()
        && !domain.contains('@')
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(char::is_whitespace);
    if ok {
        Ok(email)
    } else {
        Err("not an email address".to_owned())
    }
}

/// The direct identifier a value of any other field is, if it is one: an email address, or a
/// phone number written with its country code (`+…`) or as an 11-digit mainland mobile. Sources
/// put phones and emails into `user_id`, `anonymous_id` and ids of their own; wherever one
/// arrives it is pseudonymised like a declared phone or email, so that no clear value reaches
/// identity, its cache keys or the event store. Other digit strings (member cards, CRM ids)
/// are not taken for phones.
pub fn detect_direct(value: &str) -> Option<(&'static str, String)> {
    let value = value.trim();
    if value.contains('@') {
        return normalise_email(value).ok().map(|n| ("email", n));
    }
    let compact: String = value
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')' | '.'))
        .collect();
    let digits = compact.strip_prefix('+').unwrap_or(&compact);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let plausible = if compact.starts_with('+') {
        (8..=15).contains(&digits.len())
    } else {
        digits.len() == 11 && digits.starts_with('1')
    };
    if !plausible {
        return None;
    }
    normalise_phone(&compact, "86").ok().map(|n| ("phone", n))
}

/// True when a normalised value is a placeholder or blocked for the tenant.
pub fn is_blocked(kind: &str, normalised: &str, settings: &PrivacySettings) -> bool {
    let lower = normalised.to_lowercase();
    if DEFAULT_PLACEHOLDERS.contains(&lower.as_str()) {
        return true;
    }
    let significant: Vec<char> = lower
        .chars()
        .filter(|c| !matches!(c, '-' | ':' | '+' | ' ' | '_'))
        .collect();
    if !significant.is_empty() && significant.iter().all(|c| *c == '0') {
        return true;
    }
    if kind == "phone" || kind == "mobile" {
        // +86 then eleven equal digits, or a run like 12345678901.
        let national = lower.strip_prefix("+86").unwrap_or(&lower);
        let mut chars = national.chars();
        if let Some(first) = chars.next()
            && national.len() >= 8
            && chars.all(|c| c == first)
        {
            return true;
        }
        if national == "12345678901" || national == "12345678910" {
            return true;
        }
    }
    settings.blocked.contains(&(String::new(), lower.clone()))
        || settings.blocked.contains(&(kind.to_owned(), lower))
}

/// The pseudonym of a normalised value: `k{version}:{hex}`.
pub fn pseudonymise(key: &TenantKey, kind: &str, normalised: &str) -> String {
    let digest = match Hmac::<Sha256>::new_from_slice(&key.secret) {
        Ok(mut mac) => {
            mac.update(kind.as_bytes());
            mac.update(b":");
            mac.update(normalised.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        }
        // HMAC takes keys of any length; this arm is unreachable in practice.
        Err(_) => String::new(),
    };
    format!("k{}:{digest}", key.version)
}

/// True for a value already in pseudonym form (replays must not hash twice).
pub fn is_pseudonym(value: &str) -> bool {
    let Some(rest) = value.strip_prefix('k') else {
        return false;
    };
    let Some((version, digest)) = rest.split_once(':') else {
        return false;
    };
    !version.is_empty()
        && version.bytes().all(|b| b.is_ascii_digit())
        && digest.len() == 64
        && digest.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The display form of a normalised value.
pub fn mask(kind: &str, normalised: &str) -> String {
    let chars: Vec<char> = normalised.chars().collect();
    match kind {
        "phone" | "mobile" => {
            let national = normalised.strip_prefix("+86").unwrap_or(normalised);
            let n: Vec<char> = national.chars().collect();
            if n.len() >= 8 {
                let head: String = n[..3].iter().collect();
                let tail: String = n[n.len() - 4..].iter().collect();
                format!("{head}****{tail}")
            } else {
                "****".to_owned()
            }
        }
        "email" => match normalised.split_once('@') {
            Some((local, domain)) => {
                let first: String = local.chars().take(1).collect();
                format!("{first}***@{domain}")
            }
            None => "***".to_owned(),
        },
        _ if chars.len() > 6 => {
            let head: String = chars[..2].iter().collect();
            let tail: String = chars[chars.len() - 2..].iter().collect();
            format!("{head}***{tail}")
        }
        _ => "***".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_become_e164_or_are_refused() {
        for (raw, want) in [
            ("13812345678", "+8613812345678"),
            ("138 1234 5678", "+8613812345678"),
            ("+86 138-1234-5678", "+8613812345678"),
            ("008613812345678", "+8613812345678"),
            ("8613812345678", "+8613812345678"),
            ("+61 412 345 678", "+61412345678"),
        ] {
            assert_eq!(normalise_phone(raw, "86").as_deref(), Ok(want), "{raw}");
        }
        // The generator's spoiled phones: cut, extra digit, leading 0, letter O.
        for bad in [
            "1381234567",
            "138123456789",
            "03812345678",
            "13812O45678",
            "",
        ] {
            assert!(normalise_phone(bad, "86").is_err(), "{bad}");
        }
        assert_eq!(
            normalise_phone("0412 345 678", "61").as_deref(),
            Ok("+61412345678")
        );
    }

    #[test]
    fn emails_and_ids() {
        assert_eq!(
            normalise("email", " Ann@Example.COM ", "86").as_deref(),
            Ok("ann@example.com")
        );
        assert!(normalise("email", "ann@localhost", "86").is_err());
        assert!(normalise("email", "@x.com", "86").is_err());
        assert_eq!(normalise("crm_id", "  C-1 \0", "86").as_deref(), Ok("C-1"));
    }

    #[test]
    fn placeholders_are_blocked() {
        let s = PrivacySettings::default();
        for (kind, v) in [
            ("device_id", "00000000-0000-0000-0000-000000000000"),
            ("anonymous_id", "unknown"),
            ("anonymous_id", "UNKNOWN"),
            ("phone", "+8613800000000"),
            ("phone", "+8611111111111"),
            ("member_card", "0"),
        ] {
            assert!(is_blocked(kind, v, &s), "{kind} {v}");
        }
        assert!(!is_blocked("phone", "+8613812345678", &s));
        let mut custom = PrivacySettings::default();
        custom
            .blocked
            .insert(("member_card".into(), "vip-demo".into()));
        assert!(is_blocked("member_card", "VIP-DEMO", &custom));
        assert!(!is_blocked("crm_id", "vip-demo", &custom));
    }

    #[test]
    fn pseudonyms_carry_the_key_version_and_differ_per_key() {
        let k1 = TenantKey {
            version: 1,
            secret: vec![1; 32],
        };
        let k2 = TenantKey {
            version: 2,
            secret: vec![2; 32],
        };
        let a = pseudonymise(&k1, "phone", "+8613812345678");
        assert!(a.starts_with("k1:") && is_pseudonym(&a), "{a}");
        assert_eq!(a, pseudonymise(&k1, "phone", "+8613812345678"));
        assert_ne!(a, pseudonymise(&k2, "phone", "+8613812345678"));
        assert_ne!(a, pseudonymise(&k1, "email", "+8613812345678"));
        assert!(
            !format!("{k1:?}").contains("1, 1"),
            "the secret never prints"
        );
    }

    #[test]
    fn masks() {
        assert_eq!(mask("phone", "+8613812345678"), "138****5678");
        assert_eq!(mask("email", "ann@example.com"), "a***@example.com");
        assert_eq!(mask("member_card", "MC12345678"), "MC***78");
    }
}
