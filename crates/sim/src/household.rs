//! Phone numbers held by more than one person: a family sharing one number, and a number the
//! carrier recycled from one customer to another.
//!
//! Persons are paired into households by index (`2h` and `2h + 1`); a keyed draw per household
//! decides whether the pair shares a number, so every person still depends on the seed and
//! their own index alone (the partner's number is re-derived, never looked up).
//!
//! - A **family** pair uses the first member's number for the whole period, both of them, each
//!   with their own member card (both are members), account and devices.
//! - A **recycled** pair: the first member uses the number until the handover instant, then a
//!   new number of their own; the carrier keeps the number unused for [`RECYCLE_GAP_DAYS`], then
//!   the second member uses it (before that, their own number).
//!
//! The truth (`truth/phone_holders.csv`) lists, for every shared number, who held it and when.

use rand::Rng as _;

use crate::config::SimConfig;
use crate::rng;

/// Stream domain of the household draws (persons, mess and ads use 1 to 3, ads also 103).
const DOMAIN_HOUSEHOLD: u64 = 4;

/// Days a recycled number stays unused between its two holders (carriers quarantine a number
/// before giving it out again).
pub const RECYCLE_GAP_DAYS: i64 = 30;

/// How a household's two members hold a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sharing {
    /// Both use one number all along.
    Family,
    /// The first member's number goes to the second after a handover and a gap.
    Recycled,
}

impl Sharing {
    /// The name in the truth file.
    pub fn name(self) -> &'static str {
        match self {
            Sharing::Family => "family",
            Sharing::Recycled => "recycled",
        }
    }
}

/// Two persons sharing a number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Household {
    /// How.
    pub sharing: Sharing,
    /// Index of the member whose own number is shared (for a recycled number, its first
    /// holder).
    pub first: u64,
    /// Index of the other member (for a recycled number, its second holder).
    pub second: u64,
    /// Recycled: the first holder's last use is before this instant (epoch ms); the second
    /// holder uses it from `handover_ms + RECYCLE_GAP_DAYS`. Zero for a family.
    pub handover_ms: i64,
}

impl Household {
    /// When the second holder of a recycled number starts using it.
    pub fn second_from_ms(&self) -> i64 {
        self.handover_ms + RECYCLE_GAP_DAYS * crate::DAY_MS
    }
}

/// The household of person `idx`, if their pair shares a number.
pub fn household_of(cfg: &SimConfig, idx: u64) -> Option<Household> {
    let h = idx / 2;
    let (first, second) = (2 * h, 2 * h + 1);
    if second >= cfg.persons {
        return None;
    }
    let mut draw = rng::stream(cfg.seed, DOMAIN_HOUSEHOLD, h);
    let u: f64 = draw.random();
    let sharing = if u < cfg.phones.family {
        Sharing::Family
    } else if u < cfg.phones.family + cfg.phones.recycled {
        Sharing::Recycled
    } else {
        return None;
    };
    // Handover within the middle of the period, so both holders have time on their side.
    let (start, end) = (cfg.start_ms(), cfg.end_ms());
    let span = (end - start - RECYCLE_GAP_DAYS * crate::DAY_MS).max(1);
    let handover_ms = match sharing {
        Sharing::Family => 0,
        Sharing::Recycled => {
            start + span / 5 + (draw.random::<f64>() * (span * 3 / 5) as f64) as i64
        }
    };
    Some(Household {
        sharing,
        first,
        second,
        handover_ms,
    })
}

/// A second number for the first holder of a recycled number: another prefix than any own
/// number, and a keyed bijection of the index, so it collides with nobody's.
pub fn replacement_phone(seed: u64, idx: u64) -> String {
    format!("147{:08}", rng::permute_decimal(idx, seed ^ 5, 8))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::TemplateKind;

    #[test]
    fn both_members_see_the_same_household_at_the_configured_rates() {
        let mut cfg = SimConfig::new(TemplateKind::Retail, 20_001, 7);
        cfg.phones.family = 0.1;
        cfg.phones.recycled = 0.05;
        let (mut family, mut recycled) = (0, 0);
        for idx in 0..cfg.persons {
            let h = household_of(&cfg, idx);
            if let Some(h) = h {
                assert_eq!(household_of(&cfg, h.first), Some(h));
                assert_eq!(household_of(&cfg, h.second), Some(h));
                assert!(h.second < cfg.persons);
                if idx == h.first {
                    match h.sharing {
                        Sharing::Family => family += 1,
                        Sharing::Recycled => {
                            recycled += 1;
                            assert!(h.handover_ms > cfg.start_ms());
                            assert!(h.second_from_ms() < cfg.end_ms());
                        }
                    }
                }
            }
        }
        assert!((800..1_200).contains(&family), "{family}");
        assert!((350..650).contains(&recycled), "{recycled}");
        assert_eq!(
            household_of(&cfg, 20_000),
            None,
            "the last person has no partner"
        );
    }

    #[test]
    fn events_carry_a_shared_number_only_while_it_is_held() {
        let mut cfg = SimConfig::new(TemplateKind::Retail, 400, 11);
        cfg.phones.family = 0.2;
        cfg.phones.recycled = 0.2;
        cfg.rates = crate::Rates::none();
        let mut stream = crate::events(cfg.clone()).expect("valid config");
        let mut seen = std::collections::BTreeMap::<(u64, &str), u64>::new();
        while let Some(truth) = stream.next_with_truth() {
            let Some(idx) = truth.person.and_then(|p| p[1..].parse::<u64>().ok()) else {
                continue;
            };
            let Some(h) = household_of(&cfg, idx) else {
                continue;
            };
            let mut partner_rng = rng::stream(cfg.seed, 1, h.first);
            let shared = crate::person::own_phone(cfg.seed, h.first, &mut partner_rng);
            for id in truth.event.identifiers.iter().filter(|i| i.kind == "phone") {
                if id.value != shared {
                    continue;
                }
                match (h.sharing, idx == h.first) {
                    (Sharing::Family, _) => {}
                    (Sharing::Recycled, true) => assert!(truth.true_ms < h.handover_ms),
                    (Sharing::Recycled, false) => assert!(truth.true_ms >= h.second_from_ms()),
                }
                *seen.entry((idx, h.sharing.name())).or_default() += 1;
            }
        }
        let holders = |kind: &str| seen.keys().filter(|(_, k)| *k == kind).count();
        assert!(holders("family") > 20, "{seen:?}");
        assert!(holders("recycled") > 20, "{seen:?}");
    }
}
