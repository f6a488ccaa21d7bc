//! What the truth benchmarks share: the stored channel of each of the generator's touch kinds,
//! shares and ranks of per-channel credit, Spearman's rank correlation, and the generator's
//! journey list read as paths of stored channels.

use std::collections::BTreeMap;

use touchline_sim::template::Touch;

/// The stored channel of each truth touch kind.
pub(crate) fn stored_channel(touch: Touch) -> &'static str {
    match touch {
        Touch::PaidAds => "ads",
        Touch::WechatOa => "wechat_oa",
        Touch::CrmMessage => "crm",
        Touch::MiniProgram => "mini_program",
        Touch::App => "app",
        Touch::Web => "web",
        Touch::StoreVisit => "pos",
        Touch::CustomerService => "customer_service",
    }
}

/// A truth figure per touch kind (indexed as [`Touch::ALL`]) under its stored channel's name.
pub(crate) fn by_stored_channel(per_touch: &[f64; 8]) -> BTreeMap<&'static str, f64> {
    Touch::ALL
        .iter()
        .map(|t| (stored_channel(*t), per_touch[*t as usize]))
        .collect()
}

/// Each channel's share of all credit, over `channels`.
pub(crate) fn shares<'a>(values: &BTreeMap<&'a str, f64>) -> BTreeMap<&'a str, f64> {
    let total: f64 = values.values().sum();
    values
        .iter()
        .map(|(c, v)| (*c, if total == 0.0 { 0.0 } else { v / total }))
        .collect()
}

/// 1-based ranks, largest first.
pub(crate) fn ranks<'a>(values: &BTreeMap<&'a str, f64>) -> BTreeMap<&'a str, usize> {
    let mut order: Vec<(&str, f64)> = values.iter().map(|(c, v)| (*c, *v)).collect();
    order.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(b.0)));
    order
        .into_iter()
        .enumerate()
        .map(|(i, (c, _))| (c, i + 1))
        .collect()
}

/// Spearman's rank correlation of two rankings over the same channels.
pub(crate) fn spearman(a: &BTreeMap<&str, usize>, b: &BTreeMap<&str, usize>) -> f64 {
    let n = a.len() as f64;
    let d2: f64 = a
        .iter()
        .map(|(c, r)| {
            let d = *r as f64 - b.get(c).copied().unwrap_or(0) as f64;
            d * d
        })
        .sum();
    1.0 - 6.0 * d2 / (n * (n * n - 1.0))
}

/// Every journey of the generator's list as its path of stored channel names and whether it
/// converted (`person_id,journey,start_ms,touches,p_convert,converted,...`).
pub(crate) fn true_journeys(journeys_csv: &str) -> Vec<(String, bool)> {
    journeys_csv
        .lines()
        .skip(1)
        .filter_map(|line| {
            let cells: Vec<&str> = line.split(',').map(|c| c.trim_matches('"')).collect();
            let (touches, converted) = (cells.get(3)?, cells.get(5)?);
            let path: Vec<&str> = touches
                .split('>')
                .filter_map(|name| {
                    Touch::ALL
                        .iter()
                        .find(|t| t.name() == name)
                        .map(|t| stored_channel(*t))
                })
                .collect();
            (!path.is_empty()).then(|| (path.join(" > "), matches!(*converted, "true" | "Y" | "1")))
        })
        .collect()
}
