//! After any history of appends (in any order), merges, splits, erasures, removals and
//! compactions, the projection's timelines equal the naive reference's.

use proptest::prelude::*;

use crate::support::{Op, Reference, apply, op, projection};

fn check(ops: &[Op]) -> Result<(), TestCaseError> {
    let mut projection = projection();
    let mut reference = Reference::default();
    apply(ops, &mut projection, &mut reference);
    let expected_persons = reference.persons();
    for &person in &expected_persons {
        prop_assert_eq!(
            projection.timeline(person),
            reference.timeline(person),
            "person {}",
            person
        );
    }
    let mut seen = Vec::new();
    projection.for_each_person(|person| {
        if !person.to_events().is_empty() {
            seen.push(person.person());
        }
    });
    seen.sort_unstable();
    prop_assert_eq!(seen, expected_persons);
    let total: usize = reference.persons.values().map(Vec::len).sum();
    prop_assert_eq!(projection.events(), total);
    prop_assert_eq!(projection.memory().events, total);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn timelines_equal_the_naive_reference(ops in proptest::collection::vec(op(), 1..30)) {
        check(&ops)?;
    }
}

#[test]
fn an_unknown_person_has_an_empty_timeline() {
    let projection = projection();
    assert!(projection.timeline(42).is_empty());
    assert!(projection.person(42).is_none());
}
