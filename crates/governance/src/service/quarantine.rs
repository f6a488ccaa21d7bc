//! Quarantined events: listing them a page at a time, and replaying them through cleaning.

use sha2::{Digest as _, Sha256};

use super::Governance;
use crate::domain::pages::{filtered_token, parse_filtered_token};
use crate::error::GovernanceError;
use crate::replay::{ReplayPlan, ReplayRun, Selection};
use crate::store::quarantine::{self as store, Filter, QuarantinedRow};

/// One page of quarantined events.
#[derive(Debug, Clone)]
pub struct QuarantinePage {
    /// The page, oldest first.
    pub rows: Vec<QuarantinedRow>,
    /// Continues the listing; empty on the last page.
    pub next_page_token: String,
    /// How many events match the filter in all.
    pub total: i64,
}

impl Governance {
    /// Up to `size` events matching `filter`, after the position `page_token` continues.
    pub async fn list_quarantined(
        &self,
        tenant: &str,
        filter: &Filter,
        page_token: &str,
        size: i64,
    ) -> Result<QuarantinePage, GovernanceError> {
        let after = continues_after(page_token, filter)?;
        let (mut rows, total) = store::list(&self.pool, tenant, filter, after, size + 1).await?;
        let more = i64::try_from(rows.len()).unwrap_or(i64::MAX) > size;
        rows.truncate(usize::try_from(size).unwrap_or(100));
        let next_page_token = match rows.last() {
            Some(last) if more => page_token_after(last.sequence, filter),
            _ => String::new(),
        };
        Ok(QuarantinePage {
            rows,
            next_page_token,
            total,
        })
    }

    /// Runs `plan`; the token continues a filtered replay that stopped before its end.
    pub async fn replay_quarantined(
        &self,
        tenant: &str,
        plan: &ReplayPlan,
    ) -> Result<(ReplayRun, String), GovernanceError> {
        let run = self.replayer.replay(tenant, plan).await?;
        let next_page_token = match (run.continue_after, &plan.selection) {
            (Some(after), Selection::Filter { filter, .. }) => page_token_after(after, filter),
            _ => String::new(),
        };
        Ok((run, next_page_token))
    }
}

/// A short fingerprint of a filter, so a page token is only accepted with the filter it was
/// issued for.
fn fingerprint(f: &Filter) -> String {
    let text = format!(
        "{}|{:?}|{:?}|{:?}|{}|{:?}",
        f.source, f.reasons, f.from, f.to, f.source_event_name, f.states
    );
    hex::encode(&Sha256::digest(text.as_bytes())[..8])
}

fn page_token_after(after: i64, f: &Filter) -> String {
    filtered_token(after, &fingerprint(f))
}

/// The raw sequence a page token of `filter` continues after (0 for no token).
pub fn continues_after(token: &str, filter: &Filter) -> Result<i64, GovernanceError> {
    parse_filtered_token(token, &fingerprint(filter))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_only_continue_the_filter_they_were_issued_for() {
        let filter = Filter {
            source: "pos".into(),
            states: vec![1],
            ..Filter::default()
        };
        let token = page_token_after(42, &filter);
        assert_eq!(continues_after(&token, &filter).ok(), Some(42));
        assert_eq!(continues_after("", &filter).ok(), Some(0));
        let other = Filter {
            source: "crm".into(),
            ..filter.clone()
        };
        assert!(matches!(
            continues_after(&token, &other),
            Err(GovernanceError::Invalid(_))
        ));
        assert!(matches!(
            continues_after("not-a-token", &filter),
            Err(GovernanceError::Invalid(_))
        ));
    }
}
