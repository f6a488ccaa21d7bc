//! How an identifier is named in Redis, and how a cached entry reads back.

use uuid::Uuid;

use crate::domain::IdentifierKey;

/// Parses a live entry into (person, version); `None` for tombstones and
/// anything we did not write.
pub fn parse_entry(value: &str) -> Option<(Uuid, i64)> {
    let rest = value.strip_prefix("p:")?;
    let (person, version) = rest.rsplit_once(':')?;
    Some((Uuid::parse_str(person).ok()?, version.parse().ok()?))
}

/// The Redis key of `key` in `tenant`. Each part has `%` and `:` escaped, so
/// a value containing `:` can never collide with another identifier's key.
pub fn cache_key(prefix: &str, tenant: &str, key: &IdentifierKey) -> String {
    // Built in one buffer: this runs for every identifier of every lookup.
    let parts = [tenant, &key.id_type, &key.scope, &key.value];
    let escaped: usize = parts.iter().map(|p| p.len() + 2 * escapes(p)).sum();
    let mut name = String::with_capacity(prefix.len() + ":identity".len() + 4 + escaped);
    name.push_str(prefix);
    name.push_str(":identity");
    for part in parts {
        name.push(':');
        push_escaped(&mut name, part);
    }
    name
}

/// Characters of `part` that `push_escaped` expands to three.
fn escapes(part: &str) -> usize {
    part.bytes().filter(|b| matches!(b, b'%' | b':')).count()
}

/// Appends `part` with `%` and `:` percent-encoded, so no part can forge a
/// separator.
fn push_escaped(out: &mut String, part: &str) {
    let mut rest = part;
    while let Some(at) = rest.find(['%', ':']) {
        out.push_str(&rest[..at]);
        out.push_str(if rest.as_bytes()[at] == b'%' {
            "%25"
        } else {
            "%3A"
        });
        rest = &rest[at + 1..];
    }
    out.push_str(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_layout_and_never_collide() {
        let plain = IdentifierKey::normalise("email", "", "a@x.io");
        assert_eq!(
            cache_key("tl", "t1", &plain),
            "tl:identity:t1:email::a@x.io"
        );
        let a = IdentifierKey {
            id_type: "x".to_owned(),
            scope: "a:b".to_owned(),
            value: "c".to_owned(),
        };
        let b = IdentifierKey {
            id_type: "x".to_owned(),
            scope: "a".to_owned(),
            value: "b:c".to_owned(),
        };
        assert_ne!(cache_key("tl", "t1", &a), cache_key("tl", "t1", &b));
        let percent = IdentifierKey {
            id_type: "x".to_owned(),
            scope: "a%3Ab".to_owned(),
            value: "c".to_owned(),
        };
        assert_ne!(cache_key("tl", "t1", &a), cache_key("tl", "t1", &percent));
        assert_eq!(cache_key("tl", "t1", &a), "tl:identity:t1:x:a%3Ab:c");
        assert_eq!(
            cache_key("tl", "t1", &percent),
            "tl:identity:t1:x:a%253Ab:c"
        );
        let pseudonym = IdentifierKey::normalise("phone", "", "k1:00ff");
        assert_eq!(
            cache_key("", "t:2", &pseudonym),
            ":identity:t%3A2:phone::k1%3A00ff"
        );
    }
}
