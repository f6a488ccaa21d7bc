//! One scan of the projection for churn: every person's purchases, activity and summaries, and
//! the customers the probability-alive model is fitted on.

use super::*;

/// What the scan keeps of one person before the fit.
#[derive(Debug, Clone, Copy)]
pub(super) struct Gathered {
    pub(super) person: Uuid,
    /// What the model scores from: purchase days, or days with any event.
    pub(super) summary: Option<CustomerSummary>,
    /// Purchase days after the first, whatever the model counts.
    pub(super) repeat_purchases: u64,
    pub(super) first_purchase_ms: Option<i64>,
    pub(super) last_purchase_ms: Option<i64>,
    pub(super) last_activity_ms: Option<i64>,
    /// The index of the inactivity rule that applies to them.
    pub(super) rule: u16,
}

#[derive(Debug, Default)]
struct ScanState {
    persons: Vec<Gathered>,
    fit: Vec<CustomerSummary>,
    /// Purchase gaps per inactivity rule, of the persons the rule applies to.
    gaps: Vec<PurchaseGapSample>,
    times: Vec<i64>,
    /// Days with any event, when the model counts those instead of purchases.
    active: Vec<i64>,
    window: Vec<i64>,
}

/// What one scan gathers: persons by id, the fit's customers and the purchase gaps of each
/// inactivity rule's persons.
pub(super) struct Scanned {
    pub(super) persons: Vec<Gathered>,
    pub(super) fit: Vec<CustomerSummary>,
    pub(super) gaps: Vec<PurchaseGapSample>,
}

/// A person's summaries once their events are read: the purchase gaps for the threshold
/// suggestion, what the model scores from, the repeat purchases and the fit's customer.
fn summarise(
    state: &mut ScanState,
    gathered: &mut Gathered,
    any_event: bool,
    (now, tz): (i64, chrono_tz::Tz),
    fit_start: i64,
) {
    // Times are sorted and in range of the projection, so neither refuses them. The threshold
    // suggestion reads purchase gaps whatever the model counts.
    if let Some(gaps) = state.gaps.get_mut(usize::from(gathered.rule)) {
        let _ = gaps.add_person(&state.times);
    }
    if any_event {
        std::mem::swap(&mut state.times, &mut state.active);
    }
    let mut builder = SummaryBuilder::new(now, tz, TimeUnit::Days).ok();
    gathered.summary = builder
        .as_mut()
        .and_then(|b| b.summarize(&state.times).ok().flatten());
    let purchases = if any_event {
        builder
            .as_mut()
            .and_then(|b| b.summarize(&state.active).ok().flatten())
    } else {
        gathered.summary
    };
    gathered.repeat_purchases = purchases.map_or(0, |s| s.repeat_purchases);
    state.window.clear();
    let times = &state.times;
    state
        .window
        .extend(times.iter().copied().filter(|&t| t >= fit_start));
    if let Some(fit) = builder
        .as_mut()
        .and_then(|b| b.summarize(&state.window).ok().flatten())
    {
        state.fit.push(fit);
    }
}

/// Gathers every person's purchases and activity up to `now_ms`, each person under the
/// inactivity rule `members` gives them.
pub(super) fn gather(
    view: &TenantView,
    purchase: &Condition,
    activity: Option<&Condition>,
    (settings, members): (&Effective, &RuleMembers),
    now_ms: i64,
    threads: usize,
) -> Scanned {
    let rule_count = settings.rules.len();
    let now = secs(now_ms);
    let fit_start = now.saturating_sub(settings.fit_window_secs);
    let tz = settings.time_zone;
    let any_event = settings.model_events == ModelEvents::AnyEvent;
    let states = view.projection.scan(
        threads,
        || ScanState {
            gaps: vec![PurchaseGapSample::new(); rule_count],
            ..ScanState::default()
        },
        |state: &mut ScanState, person| {
            let Some(id) = view.persons.id(person.person()) else {
                return Ok::<(), ()>(());
            };
            if person.iter().next().is_none() {
                return Ok(());
            }
            state.times.clear();
            state.active.clear();
            let mut gathered = Gathered {
                person: id,
                summary: None,
                repeat_purchases: 0,
                first_purchase_ms: None,
                last_purchase_ms: None,
                last_activity_ms: None,
                rule: members.rule_of(&settings.rules, &id),
            };
            for event in person.iter() {
                let event = event.to_event();
                let is_purchase = compile::matches(purchase, &event);
                if is_purchase && secs(event.time_ms) <= now {
                    gathered.first_purchase_ms.get_or_insert(event.time_ms);
                    gathered.last_purchase_ms = Some(event.time_ms);
                    state.times.push(secs(event.time_ms));
                }
                let active = activity.map_or(is_purchase, |c| compile::matches(c, &event));
                if active {
                    gathered.last_activity_ms = Some(event.time_ms);
                }
                if any_event && secs(event.time_ms) <= now {
                    state.active.push(secs(event.time_ms));
                }
            }
            summarise(state, &mut gathered, any_event, (now, tz), fit_start);
            state.persons.push(gathered);
            Ok(())
        },
    );
    let mut scanned = Scanned {
        persons: Vec::new(),
        fit: Vec::new(),
        gaps: vec![PurchaseGapSample::new(); rule_count],
    };
    for state in states.unwrap_or_default() {
        scanned.persons.extend(state.persons);
        scanned.fit.extend(state.fit);
        for (all, part) in scanned.gaps.iter_mut().zip(state.gaps) {
            all.merge(part);
        }
    }
    scanned.persons.sort_unstable_by_key(|p| p.person);
    scanned
}
