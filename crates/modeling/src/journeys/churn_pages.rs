//! Pages of churn scores and of RFM persons, with the tokens that continue them.
//!
//! A token names the last person of its page (and, for score order, that person's score
//! key), so a page continues after it whatever moved meanwhile: nobody is listed twice and
//! nobody who kept their place is skipped. It also carries a hash of the request's other
//! fields, so a token sent with another request is refused. RFM tokens carry the evaluation
//! time of the first page, so every page of one run scores against the same instant.

use std::collections::HashSet;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use uuid::Uuid;

use super::churn::{ChurnRow, ChurnTable, score_key};
use super::listings::request_key;
use super::query::Violations;
use crate::error::ModelingError;

/// Most persons on one page.
pub const MAX_PAGE_SIZE: usize = 1_000;
/// Persons on a churn page by default.
pub const DEFAULT_CHURN_PAGE: usize = 100;

/// The order of a churn listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChurnOrder {
    /// Highest score first, unscored last, ties by person id.
    Score,
    /// By person id.
    PersonId,
}

/// A churn listing as asked for.
#[derive(Debug, Clone, PartialEq)]
pub struct ChurnListQuery {
    /// Persons per page as asked (0: the default).
    pub page_size: i32,
    /// The token; empty for the first page.
    pub page_token: String,
    /// Only scores at or above this.
    pub min_score: f64,
    /// Only persons flagged churned.
    pub churned_only: bool,
    /// A segment (not supported yet).
    pub segment: String,
    /// The order.
    pub order: ChurnOrder,
}

/// A checked listing request.
#[derive(Debug, Clone, PartialEq)]
pub struct ValidChurnList {
    size: usize,
    min_score: f64,
    churned_only: bool,
    order: ChurnOrder,
    request: u64,
    after: Option<(f64, Uuid)>,
}

/// One page of churn rows.
#[derive(Debug, Clone, PartialEq)]
pub struct ChurnPage {
    /// The rows.
    pub rows: Vec<ChurnRow>,
    /// The next page's token; empty on the last page.
    pub next_page_token: String,
    /// Persons matching across all pages.
    pub total: u64,
}

const CHURN_PREFIX: &str = "churn";
const RFM_PREFIX: &str = "rfm";

fn encode(parts: &[String]) -> String {
    URL_SAFE_NO_PAD.encode(parts.join(":"))
}

fn decode(token: &str, prefix: &str, count: usize) -> Option<Vec<String>> {
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    let parts: Vec<String> = text.split(':').map(str::to_owned).collect();
    (parts.len() == count && parts.first().map(String::as_str) == Some(prefix)).then_some(parts)
}

fn bad_token(problems: &mut Violations, text: &'static str) {
    problems.add("page_token", "INVALID_PAGE_TOKEN", text);
}

/// The page size: 0 gives `default`, above 1,000 gives 1,000, negative is refused.
pub fn page_size(asked: i32, default: usize, problems: &mut Violations) -> usize {
    match asked {
        0 => default,
        n if n < 0 => {
            problems.add("page_size", "OUT_OF_RANGE", "must not be negative");
            default
        }
        n => usize::try_from(n)
            .unwrap_or(MAX_PAGE_SIZE)
            .min(MAX_PAGE_SIZE),
    }
}

impl ChurnListQuery {
    /// Checks every field, naming each problem.
    pub fn validate(&self) -> Result<ValidChurnList, ModelingError> {
        let mut problems = Violations::default();
        let size = page_size(self.page_size, DEFAULT_CHURN_PAGE, &mut problems);
        if !(self.min_score.is_finite() && (0.0..=1.0).contains(&self.min_score)) {
            problems.add("min_score", "OUT_OF_RANGE", "from 0 to 1");
        }
        let request = request_key(&(
            self.min_score.to_bits(),
            self.churned_only,
            &self.segment,
            self.order,
        ));
        let after = if self.page_token.is_empty() {
            None
        } else {
            match decode(&self.page_token, CHURN_PREFIX, 4) {
                Some(parts) if parts[1] == request.to_string() => {
                    let key = parts[2].parse::<u64>().ok().map(f64::from_bits);
                    let person = Uuid::parse_str(&parts[3]).ok();
                    match (key, person) {
                        (Some(key), Some(person)) => Some((key, person)),
                        _ => {
                            bad_token(&mut problems, "page_token is not one this service issued");
                            None
                        }
                    }
                }
                Some(_) => {
                    bad_token(
                        &mut problems,
                        "the page token belongs to another listing: send the same request",
                    );
                    None
                }
                None => {
                    bad_token(&mut problems, "page_token is not one this service issued");
                    None
                }
            }
        };
        if !problems.is_empty() {
            return Err(ModelingError::Invalid(problems.0));
        }
        Ok(ValidChurnList {
            size,
            min_score: self.min_score,
            churned_only: self.churned_only,
            order: self.order,
            request,
            after,
        })
    }
}

impl ValidChurnList {
    fn keeps(&self, row: &ChurnRow, (opted_out, members): Excluded<'_>) -> bool {
        let scored = self.min_score <= 0.0 || row.score.is_some_and(|s| s >= self.min_score);
        scored
            && (!self.churned_only || row.churned)
            && !opted_out.contains(&row.person)
            && members.is_none_or(|m| m.binary_search(&row.person).is_ok())
    }

    fn token(&self, row: &ChurnRow) -> String {
        encode(&[
            CHURN_PREFIX.to_owned(),
            self.request.to_string(),
            score_key(row).to_bits().to_string(),
            row.person.to_string(),
        ])
    }

    /// The page of `table` this request asks for, opted-out persons left out and, when the
    /// request names a segment, only its `members` (sorted) kept.
    pub fn page(
        &self,
        table: &ChurnTable,
        opted_out: &HashSet<Uuid>,
        members: Option<&[Uuid]>,
    ) -> ChurnPage {
        let excluded = (opted_out, members);
        let rows = &table.rows;
        let ordered: Box<dyn Iterator<Item = &ChurnRow>> = match self.order {
            ChurnOrder::PersonId => {
                let start = self.after.map_or(0, |(_, person)| {
                    rows.partition_point(|r| r.person <= person)
                });
                Box::new(rows[start..].iter())
            }
            ChurnOrder::Score => {
                let order = &table.by_score;
                let start = self.after.map_or(0, |(key, person)| {
                    order.partition_point(|&i| {
                        let row = &rows[i as usize];
                        let k = score_key(row);
                        k > key || (k == key && row.person <= person)
                    })
                });
                Box::new(order[start..].iter().map(|&i| &rows[i as usize]))
            }
        };
        let mut page = Vec::with_capacity(self.size.min(rows.len()));
        let mut more = false;
        for row in ordered.filter(|row| self.keeps(row, excluded)) {
            if page.len() == self.size {
                more = true;
                break;
            }
            page.push(*row);
        }
        let total = rows.iter().filter(|row| self.keeps(row, excluded)).count() as u64;
        let next_page_token = match page.last() {
            Some(last) if more => self.token(last),
            _ => String::new(),
        };
        ChurnPage {
            rows: page,
            next_page_token,
            total,
        }
    }
}

/// Who a listing leaves out: the persons who opted out, and, when it names a segment, everyone
/// not among its members (sorted).
type Excluded<'a> = (&'a HashSet<Uuid>, Option<&'a [Uuid]>);

/// Where an RFM run's person page starts: the evaluation time of the first page and the
/// last person already returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RfmCursor {
    /// The first page's evaluation time (ms).
    pub as_of_ms: i64,
    /// The last person returned.
    pub after: Uuid,
}

/// The cursor of an RFM page token; `None` for the empty token.
pub fn decode_rfm_token(token: &str, request: u64, problems: &mut Violations) -> Option<RfmCursor> {
    if token.is_empty() {
        return None;
    }
    let Some(parts) = decode(token, RFM_PREFIX, 4) else {
        bad_token(problems, "page_token is not one this service issued");
        return None;
    };
    if parts[1] != request.to_string() {
        bad_token(
            problems,
            "the page token belongs to another run: send the same request",
        );
        return None;
    }
    match (parts[2].parse::<i64>(), Uuid::parse_str(&parts[3])) {
        (Ok(as_of_ms), Ok(after)) => Some(RfmCursor { as_of_ms, after }),
        _ => {
            bad_token(problems, "page_token is not one this service issued");
            None
        }
    }
}

/// The token continuing an RFM run after `cursor`.
pub fn rfm_token(request: u64, cursor: RfmCursor) -> String {
    encode(&[
        RFM_PREFIX.to_owned(),
        request.to_string(),
        cursor.as_of_ms.to_string(),
        cursor.after.to_string(),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journeys::churn::{ChurnRow, RuleOutcome};

    fn row(n: u128, score: Option<f64>, churned: bool) -> ChurnRow {
        ChurnRow {
            person: Uuid::from_u128(n),
            score,
            probability_alive: score.map(|s| 1.0 - s),
            expected_purchases: None,
            churned,
            inactive_for_ms: None,
            repeat_purchases: 0,
            first_purchase_ms: None,
            last_purchase_ms: None,
            rule: 0,
        }
    }

    fn table(rows: Vec<ChurnRow>) -> ChurnTable {
        let mut by_score: Vec<u32> = (0..rows.len() as u32).collect();
        by_score.sort_by(|&x, &y| {
            let (x, y) = (&rows[x as usize], &rows[y as usize]);
            score_key(y)
                .total_cmp(&score_key(x))
                .then(x.person.cmp(&y.person))
        });
        ChurnTable {
            rows,
            by_score,
            rules: vec![RuleOutcome::fallback_default()],
            fit: None,
            compute_ms: 0,
            positions: Default::default(),
        }
    }

    fn list(order: ChurnOrder, size: i32, token: &str) -> ChurnListQuery {
        ChurnListQuery {
            page_size: size,
            page_token: token.to_owned(),
            min_score: 0.0,
            churned_only: false,
            segment: String::new(),
            order,
        }
    }

    #[test]
    fn score_pages_follow_the_score_then_the_id_and_skip_opted_out_persons() {
        let table = table(vec![
            row(1, Some(0.5), false),
            row(2, Some(0.9), true),
            row(3, None, false),
            row(4, Some(0.5), true),
            row(5, Some(0.7), false),
        ]);
        let opted_out = HashSet::from([Uuid::from_u128(5)]);
        let mut token = String::new();
        let mut seen = Vec::new();
        loop {
            let valid = list(ChurnOrder::Score, 2, &token)
                .validate()
                .unwrap_or_else(|err| panic!("{err}"));
            let page = valid.page(&table, &opted_out, None);
            assert_eq!(page.total, 4);
            seen.extend(page.rows.iter().map(|r| r.person.as_u128()));
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
        assert_eq!(seen, [2, 1, 4, 3]);
        let by_id = list(ChurnOrder::PersonId, 10, "")
            .validate()
            .unwrap_or_else(|err| panic!("{err}"))
            .page(&table, &opted_out, None);
        let ids: Vec<u128> = by_id.rows.iter().map(|r| r.person.as_u128()).collect();
        assert_eq!(ids, [1, 2, 3, 4]);
        let churned = ChurnListQuery {
            churned_only: true,
            min_score: 0.6,
            ..list(ChurnOrder::Score, 10, "")
        };
        let page = churned
            .validate()
            .unwrap_or_else(|err| panic!("{err}"))
            .page(&table, &opted_out, None);
        assert_eq!(page.rows.len(), 1);
        assert!(list(ChurnOrder::Score, 2, "nope").validate().is_err());
        // Limited to a segment: only its members, still by score and without opted-out ones.
        let members = [1, 3, 5].map(Uuid::from_u128);
        let in_segment = ChurnListQuery {
            segment: "tenants/t/segments/s".to_owned(),
            ..list(ChurnOrder::Score, 10, "")
        }
        .validate()
        .unwrap_or_else(|err| panic!("{err}"))
        .page(&table, &opted_out, Some(&members));
        let ids: Vec<u128> = in_segment.rows.iter().map(|r| r.person.as_u128()).collect();
        assert_eq!((ids, in_segment.total), (vec![1, 3], 2));
    }
}
