//! Recognises phone numbers and email addresses in clear, whatever the
//! identifier type they arrive under.
//!
//! Identity must never store a direct identifier unhashed: not in its
//! tables, not in the names of its Redis keys. It cannot pseudonymise
//! either (the tenant's HMAC key is governance's), so a value that looks
//! like a clear phone or email is refused where it enters: in BatchResolve
//! the item carrying it stays unresolved (the call's other items resolve);
//! LinkIdentifiers, SetConsent, the lookups and the blocked values of the
//! rules refuse the call. The test is on the value, not on the type: a login id that is
//! an email address (`user_id = ann@example.cn`) is as direct as an email.
//! Pseudonyms (`k1:<hex>`) are never refused.

use touchline_error::FieldViolation;

use crate::domain;

/// The field-violation reason of a clear value.
pub const NOT_PSEUDONYMISED: &str = "NOT_PSEUDONYMISED";

/// What a clear value looks like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClearKind {
    /// A phone number (E.164, or a mainland mobile number).
    Phone,
    /// An email address.
    Email,
}

/// Whether `value` is a phone number or an email address in clear.
pub fn looks_clear(value: &str) -> Option<ClearKind> {
    let value = value.trim();
    if domain::is_pseudonym(value) {
        return None;
    }
    if is_email(value) {
        Some(ClearKind::Email)
    } else if is_phone(value) {
        Some(ClearKind::Phone)
    } else {
        None
    }
}

/// The violation naming a clear value at `field` (the path of the value).
pub fn violation(field: String) -> FieldViolation {
    FieldViolation::new(
        field,
        NOT_PSEUDONYMISED,
        "phone numbers and email addresses reach identity only as pseudonyms (k1:<hex>), \
         whatever their identifier type: send the value through governance, which \
         pseudonymises it with the tenant's key, or block it in governance's privacy settings \
         (UpdatePrivacySettings) / 手机号和邮箱（无论标识类型）只能以假名（k1:<hex>）形式到达身份服务：\
         请经由治理服务用租户密钥假名化，或在治理服务的隐私设置（UpdatePrivacySettings）中屏蔽",
    )
}

/// A plausible phone number: `+` and 8 to 15 digits not starting with 0
/// (E.164), or a mainland mobile number (`1[3-9]` and 9 more digits, with
/// or without `86` / `0086` in front). Spaces, dashes, dots and brackets
/// may separate the digits; anything else means it is not a phone.
fn is_phone(value: &str) -> bool {
    let (plus, rest) = match value.strip_prefix('+') {
        Some(rest) => (true, rest),
        None => (false, value),
    };
    let mut digits = String::with_capacity(rest.len());
    for c in rest.chars() {
        match c {
            '0'..='9' => digits.push(c),
            ' ' | '-' | '.' | '(' | ')' => {}
            _ => return false,
        }
    }
    if plus && (8..=15).contains(&digits.len()) && !digits.starts_with('0') {
        return true;
    }
    let national = digits
        .strip_prefix("0086")
        .or_else(|| digits.strip_prefix("86").filter(|d| d.len() == 11))
        .unwrap_or(&digits);
    let bytes = national.as_bytes();
    bytes.len() == 11 && bytes[0] == b'1' && (b'3'..=b'9').contains(&bytes[1])
}

/// An email address: a local part of the characters RFC 5322 allows
/// unquoted (no leading, trailing or double dot), `@`, and a domain of at
/// least two labels of letters, digits and inner hyphens.
fn is_email(value: &str) -> bool {
    let Some((local, domain)) = value.rsplit_once('@') else {
        return false;
    };
    let local_ok = !local.is_empty()
        && local.len() <= 64
        && !local.starts_with('.')
        && !local.ends_with('.')
        && !local.contains("..")
        && local
            .chars()
            .all(|c| c.is_alphanumeric() || "!#$%&'*+/=?^_`{|}~.-".contains(c));
    let labels: Vec<&str> = domain.split('.').collect();
    let domain_ok = labels.len() >= 2
        && labels.iter().all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
        });
    local_ok && domain_ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phones_in_any_common_writing_are_clear() {
        for phone in [
            "+8613912345678",
            "13912345678",
            "139 1234 5678",
            "139-1234-5678",
            "(139) 1234.5678",
            "8613912345678",
            "008613912345678",
            "+44 20 7946 0958",
            "+1 (415) 555-2671",
        ] {
            assert_eq!(looks_clear(phone), Some(ClearKind::Phone), "{phone}");
        }
    }

    #[test]
    fn emails_are_clear_under_any_type() {
        for email in [
            "someone@example.cn",
            " Ann.Lee+shop@Mail.Example.COM ",
            "张三@例子.中国",
        ] {
            assert_eq!(looks_clear(email), Some(ClearKind::Email), "{email}");
        }
    }

    #[test]
    fn ids_and_pseudonyms_are_not_clear() {
        let pseudonym = format!("k1:{}", "ab".repeat(32));
        for value in [
            pseudonym.as_str(),
            "k1:0123456789abcdef",
            "0012345678",
            "12345678901",
            "C000123456",
            "U123456789",
            "oAbCdEfGh1234567890123456789",
            "00000000-0000-0000-0000-000000000000",
            "123e4567-e89b-12d3-a456-426614174000",
            "+0123456789",
            "+123456",
            "user@localhost",
            "@example.com",
            "a..b@example.com",
            "ann@-example.com",
            "m-7",
        ] {
            assert_eq!(looks_clear(value), None, "{value}");
        }
    }
}
