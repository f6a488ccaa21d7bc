use super::*;

/// What a policy should say about a URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Accepted,
    /// Refused for a reason other than the address, by its code.
    Refused(&'static str),
    /// Refused because the literal address is of this class.
    NonPublic(AddressClass),
}

use AddressClass::*;
use Expect::*;

fn verdict(policy: &AddressPolicy, url: &str) -> Expect {
    match policy.check_url(url) {
        Ok(_) => Accepted,
        Err(AddressRejection::NonPublicAddress { class, .. }) => NonPublic(class),
        Err(other) => Refused(other.code()),
    }
}

fn assert_verdicts(policy: &AddressPolicy, cases: &[(&str, Expect)]) {
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(url, expected)| {
            let actual = verdict(policy, url);
            (actual != *expected).then(|| format!("{url}: expected {expected:?}, got {actual:?}"))
        })
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

#[test]
fn the_strict_policy_takes_only_public_https() {
    assert_verdicts(
        &AddressPolicy::STRICT,
        &[
            ("https://example.com/hooks/1?x=y", Accepted),
            ("HTTPS://EXAMPLE.COM", Accepted),
            ("https://example.com:8443/", Accepted),
            ("https://8.8.8.8/hook", Accepted),
            ("https://[2606:4700:4700::1111]/", Accepted),
            ("https://[::ffff:8.8.8.8]/", Accepted),
            // The fragment is not part of the authority: the host is example.com.
            ("https://example.com#@127.0.0.1", Accepted),
            ("http://example.com/", Refused("PLAIN_HTTP")),
            ("http://[::ffff:127.0.0.1]/", Refused("PLAIN_HTTP")),
            ("ftp://example.com/", Refused("UNSUPPORTED_SCHEME")),
            ("file:///etc/passwd", Refused("UNSUPPORTED_SCHEME")),
            (
                "gopher://127.0.0.1:6379/_INFO",
                Refused("UNSUPPORTED_SCHEME"),
            ),
            ("not a url", Refused("INVALID_URL")),
            ("", Refused("INVALID_URL")),
            ("https://", Refused("INVALID_URL")),
            ("https://[fe80::1%25eth0]/", Refused("INVALID_URL")),
            ("https://256.0.0.1/", Refused("INVALID_URL")),
            (
                "https://user:pass@example.com/",
                Refused("CREDENTIALS_IN_URL"),
            ),
            ("https://user@example.com/", Refused("CREDENTIALS_IN_URL")),
            (
                "https://example.com@127.0.0.1/",
                Refused("CREDENTIALS_IN_URL"),
            ),
            (
                "https://127.0.0.1:443@example.com/",
                Refused("CREDENTIALS_IN_URL"),
            ),
            ("https://127.0.0.1/", NonPublic(Loopback)),
            ("https://127.1/", NonPublic(Loopback)),
            ("https://127.0.0.1./", NonPublic(Loopback)),
            ("https://2130706433/", NonPublic(Loopback)),
            ("https://0x7f000001/", NonPublic(Loopback)),
            ("https://0x7f.0.0.1/", NonPublic(Loopback)),
            ("https://017700000001/", NonPublic(Loopback)),
            ("https://[::1]/", NonPublic(Loopback)),
            ("https://[::ffff:127.0.0.1]/", NonPublic(Loopback)),
            ("https://[::ffff:7f00:1]/", NonPublic(Loopback)),
            ("https://[0:0:0:0:0:ffff:127.0.0.1]/", NonPublic(Loopback)),
            ("https://[2002:7f00:1::]/", NonPublic(Loopback)),
            ("https://0.0.0.0/", NonPublic(Unspecified)),
            ("https://0/", NonPublic(Unspecified)),
            ("https://[::]/", NonPublic(Unspecified)),
            (
                "https://169.254.169.254/latest/meta-data/",
                NonPublic(LinkLocal),
            ),
            ("https://2852039166/", NonPublic(LinkLocal)),
            ("https://[fe80::1]/", NonPublic(LinkLocal)),
            ("https://[::ffff:169.254.169.254]/", NonPublic(LinkLocal)),
            ("https://10.0.0.1/", NonPublic(Private)),
            ("https://172.16.0.1/", NonPublic(Private)),
            ("https://172.31.255.255/", NonPublic(Private)),
            ("https://172.32.0.1/", Accepted),
            ("https://192.168.0.10:8080/", NonPublic(Private)),
            ("https://[fd00::1]/", NonPublic(Private)),
            ("https://[::ffff:10.0.0.1]/", NonPublic(Private)),
            ("https://[64:ff9b::a00:1]/", NonPublic(Private)),
            ("https://100.64.0.1/", NonPublic(SharedAddressSpace)),
            ("https://100.127.255.255/", NonPublic(SharedAddressSpace)),
            ("https://224.0.0.1/", NonPublic(Multicast)),
            ("https://[ff02::1]/", NonPublic(Multicast)),
            ("https://255.255.255.255/", NonPublic(Broadcast)),
            ("https://192.0.2.1/", NonPublic(Documentation)),
            ("https://198.51.100.1/", NonPublic(Documentation)),
            ("https://203.0.113.1/", NonPublic(Documentation)),
            ("https://[2001:db8::1]/", NonPublic(Documentation)),
            ("https://240.0.0.1/", NonPublic(Reserved)),
            ("https://198.18.0.1/", NonPublic(Reserved)),
            ("https://[2001::1]/", NonPublic(Reserved)),
        ],
    );
}

#[test]
fn the_local_policy_adds_plain_http_and_loopback_only() {
    assert_verdicts(
        &AddressPolicy::LOCAL,
        &[
            ("http://127.0.0.1:8080/hook", Accepted),
            ("http://[::ffff:127.0.0.1]/", Accepted),
            ("http://127.1/", Accepted),
            ("http://[::1]:9000/", Accepted),
            ("http://0.0.0.0/", Accepted),
            ("http://example.com/", Accepted),
            ("https://127.0.0.1/", Accepted),
            ("http://10.0.0.1/", NonPublic(Private)),
            ("http://169.254.169.254/", NonPublic(LinkLocal)),
            ("http://[fe80::1]/", NonPublic(LinkLocal)),
            ("http://user:pass@127.0.0.1/", Refused("CREDENTIALS_IN_URL")),
            ("ftp://127.0.0.1/", Refused("UNSUPPORTED_SCHEME")),
        ],
    );
}

#[test]
fn allowing_private_ranges_leaves_loopback_and_link_local_refused() {
    let policy = AddressPolicy {
        allow_private: true,
        ..AddressPolicy::STRICT
    };
    assert_verdicts(
        &policy,
        &[
            ("https://10.1.2.3/", Accepted),
            ("https://192.168.1.1/", Accepted),
            ("https://[fd00::1]/", Accepted),
            ("https://100.64.0.1/", Accepted),
            ("https://127.0.0.1/", NonPublic(Loopback)),
            ("https://169.254.169.254/", NonPublic(LinkLocal)),
            ("http://10.1.2.3/", Refused("PLAIN_HTTP")),
        ],
    );
}

#[test]
fn the_default_policy_is_the_strict_one() {
    assert_eq!(AddressPolicy::default(), AddressPolicy::STRICT);
}

#[test]
fn rejections_say_which_address_and_why() {
    let rejection = AddressPolicy::STRICT
        .check_url("https://[::ffff:127.0.0.1]/")
        .expect_err("loopback is refused");
    assert_eq!(
        rejection.to_string(),
        "::ffff:127.0.0.1 is a loopback address, not a public address"
    );
}

#[tokio::test]
async fn a_name_that_resolves_to_loopback_is_refused_unless_allowed() {
    let refused = AddressPolicy::STRICT
        .check_endpoint("https://localhost/hook")
        .await
        .expect_err("localhost is loopback");
    assert!(
        matches!(
            refused,
            AddressRejection::ResolvesToNonPublic {
                class: Loopback,
                ..
            }
        ),
        "{refused:?}"
    );
    assert!(
        refused.to_string().starts_with("localhost resolves to "),
        "{refused}"
    );

    let addresses = AddressPolicy::LOCAL
        .resolve("localhost", 8080)
        .await
        .expect("localhost is allowed locally");
    assert!(!addresses.is_empty());
    assert!(
        addresses
            .iter()
            .all(|address| address.port() == 8080 && address.ip().is_loopback())
    );
}

#[tokio::test]
async fn a_name_that_does_not_resolve_is_reported_as_such() {
    // `.invalid` is reserved never to resolve.
    let refused = AddressPolicy::STRICT
        .check_endpoint("https://no-such-host.invalid/")
        .await
        .expect_err("an .invalid name never resolves");
    assert_eq!(refused.code(), "UNRESOLVABLE_HOST", "{refused:?}");
}
