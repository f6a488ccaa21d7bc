//! Resource names of the collection contract.

/// Splits `tenants/{tenant}/{collection}/{id}` into `(tenant, id)`.
pub fn parse<'a>(name: &'a str, collection: &str) -> Option<(&'a str, &'a str)> {
    let rest = name.strip_prefix("tenants/")?;
    let (tenant, rest) = rest.split_once('/')?;
    let id = rest.strip_prefix(collection)?.strip_prefix('/')?;
    (!tenant.is_empty() && !id.is_empty() && !id.contains('/')).then_some((tenant, id))
}

/// `tenants/{tenant}/sources/{id}`.
pub fn source(tenant: &str, id: &str) -> String {
    format!("tenants/{tenant}/sources/{id}")
}

/// `tenants/{tenant}/imports/{id}`.
pub fn import(tenant: &str, id: &str) -> String {
    format!("tenants/{tenant}/imports/{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_reject_junk() {
        assert_eq!(parse(&source("t1", "pos"), "sources"), Some(("t1", "pos")));
        assert_eq!(parse("tenants/t1/imports/i1", "sources"), None);
        assert_eq!(parse("tenants//sources/pos", "sources"), None);
        assert_eq!(parse("tenants/t1/sources/a/b", "sources"), None);
    }
}
