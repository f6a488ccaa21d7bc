//! What the stored data keeps of the true journeys: for every true person who bought, the
//! stored person holding most of their orders (the buyer the models see), and per channel
//! the share of the person's touch events stored on that buyer. A touch stored on another
//! fragment (a browser that never logged in, a mini-program never bound to the member) is
//! a journey of its own to every model, whatever the model. An order stored without a person
//! (a walk-in's POS sale with neither member card nor phone) is in no journey at all: the
//! models see its touches, wherever they are stored, as a journey that did not convert.

use std::collections::{BTreeMap, HashMap, HashSet};

use touchline_proto::modeling::v1::StoredEvent;

/// Events that report an order.
const ORDER_EVENTS: [&str; 2] = ["purchase", "submit_order"];

/// One stored event of a true person.
struct Stored {
    person: String,
    name: String,
    channel: String,
}

/// Prints, per channel, how many of the buyers' `touch_events` (read as their referrer) are
/// stored on the buyer.
pub(crate) fn touches_reaching_the_buyer(
    stored: &[StoredEvent],
    truth_of_message: &HashMap<String, String>,
    touch_events: &[&str],
) {
    let mut by_true_person: HashMap<String, Vec<Stored>> = HashMap::new();
    for event in stored {
        let Some(person) = truth_of_message.get(&event.message_id) else {
            continue;
        };
        by_true_person
            .entry(person.clone())
            .or_default()
            .push(Stored {
                person: event.person_id.clone(),
                channel: channel_read(event),
                name: event.event_name.clone(),
            });
    }
    // channel → (touch events of buyers, of those on the buyer)
    let mut reach: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    let (mut buyers, mut fragments) = (0u64, 0u64);
    for events in by_true_person.values() {
        let mut orders: HashMap<&str, u64> = HashMap::new();
        // An order stored without a person (a walk-in's POS sale with no member card or
        // phone) names no buyer.
        for e in events
            .iter()
            .filter(|e| ORDER_EVENTS.contains(&e.name.as_str()) && !e.person.is_empty())
        {
            *orders.entry(e.person.as_str()).or_default() += 1;
        }
        let Some((buyer, _)) = orders
            .into_iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(a.0)))
        else {
            continue;
        };
        buyers += 1;
        let mut stored_persons: Vec<&str> = events.iter().map(|e| e.person.as_str()).collect();
        stored_persons.sort_unstable();
        stored_persons.dedup();
        fragments += stored_persons.len() as u64;
        for e in events
            .iter()
            .filter(|e| touch_events.contains(&e.name.as_str()))
        {
            let slot = reach.entry(e.channel.clone()).or_default();
            slot.0 += 1;
            slot.1 += u64::from(e.person == buyer);
        }
    }
    println!(
        "\n=== what reaches the buyer: {buyers} true persons with an order, stored as {fragments} persons ({:.2} each)",
        fragments as f64 / buyers.max(1) as f64
    );
    println!(
        "  {:<18}{:>14}{:>14}{:>10}",
        "channel read", "touch events", "on the buyer", "share"
    );
    for (channel, (all, on_buyer)) in &reach {
        println!(
            "  {channel:<18}{all:>14}{on_buyer:>14}{:>9.1}%",
            *on_buyer as f64 * 100.0 / (*all).max(1) as f64
        );
    }
}

/// A non-empty text property of a stored event.
fn text(event: &StoredEvent, field: &str) -> Option<String> {
    event
        .properties
        .as_ref()
        .and_then(|p| p.fields.get(field))
        .and_then(|v| match &v.kind {
            Some(prost_types::value::Kind::StringValue(s)) if !s.is_empty() => Some(s.clone()),
            _ => None,
        })
}

/// The channel an event is read as: what referred it when something did, else its own.
fn channel_read(event: &StoredEvent) -> String {
    text(event, "utm_source").unwrap_or_else(|| event.channel.clone())
}

/// A stored event as the journey check reads it.
struct Read {
    ms: i64,
    name: String,
    channel: String,
    /// The true person whose message it was.
    true_person: Option<String>,
}

/// Per channel, of the true converting journeys: how many the channel touched, how many of
/// those the stored journey before the same order (the buyer's touch events from the true
/// journey's first touch to the order) shows it in, and how many stored journeys show it
/// where the true journey did not touch it (and of those, how many show it only through events
/// another true person sent: identity put them on the buyer).
pub(crate) fn converting_journeys_kept(
    stored: &[StoredEvent],
    truth_of_message: &HashMap<String, String>,
    touch_events: &[&str],
    journeys_csv: &str,
    stored_channel: impl Fn(&str) -> Option<&'static str>,
) {
    let mut timelines: HashMap<String, Vec<Read>> = HashMap::new();
    // order id → (stored person, first report's instant)
    let mut orders: HashMap<String, (String, i64)> = HashMap::new();
    // Events stored without a person (a walk-in's POS sale with no member card or phone, a
    // screen on a shared device) belong to no journey: they are not one person's timeline.
    let without_person: HashSet<String> = stored
        .iter()
        .filter(|e| e.person_id.is_empty() && ORDER_EVENTS.contains(&e.event_name.as_str()))
        .filter_map(|e| text(e, "order_id"))
        .collect();
    for event in stored.iter().filter(|e| !e.person_id.is_empty()) {
        let ms = event
            .event_time
            .as_ref()
            .map_or(0, |t| t.seconds * 1_000 + i64::from(t.nanos) / 1_000_000);
        if ORDER_EVENTS.contains(&event.event_name.as_str()) {
            if let Some(order) = text(event, "order_id") {
                let slot = orders
                    .entry(order)
                    .or_insert_with(|| (event.person_id.clone(), ms));
                if ms < slot.1 {
                    *slot = (event.person_id.clone(), ms);
                }
            }
            continue;
        }
        if !touch_events.contains(&event.event_name.as_str()) {
            continue;
        }
        timelines
            .entry(event.person_id.clone())
            .or_default()
            .push(Read {
                ms,
                name: event.event_name.clone(),
                channel: channel_read(event),
                true_person: truth_of_message.get(&event.message_id).cloned(),
            });
    }
    // channel → (true journeys touching it, of those kept, stored journeys adding it, of
    // those only through another true person's events)
    let mut kept: BTreeMap<&'static str, (u64, u64, u64, u64)> = BTreeMap::new();
    let (mut found, mut missing, mut anonymous, mut empty) = (0u64, 0u64, 0u64, 0u64);
    // person_id,journey,start_ms,touches,p_convert,converted,conversion_channel,conversion_ms,order_id,value
    for line in journeys_csv.lines().skip(1) {
        let cells: Vec<&str> = line.split(',').map(|c| c.trim_matches('"')).collect();
        let (Some(buyer), Some(start), Some(touches), Some(order)) = (
            cells.first(),
            cells.get(2).and_then(|c| c.parse::<i64>().ok()),
            cells.get(3),
            cells.get(8).filter(|o| !o.is_empty()),
        ) else {
            continue;
        };
        let Some((person, at)) = orders.get(*order) else {
            if without_person.contains(*order) {
                anonymous += 1;
            } else {
                missing += 1;
            }
            continue;
        };
        found += 1;
        let truth: Vec<&'static str> = touches.split('>').filter_map(&stored_channel).collect();
        let window: Vec<&Read> = timelines.get(person).map_or_else(Vec::new, |events| {
            events
                .iter()
                .filter(|e| e.ms >= start - 60_000 && e.ms <= *at && !e.name.is_empty())
                .collect()
        });
        let stored: Vec<&str> = window.iter().map(|e| e.channel.as_str()).collect();
        empty += u64::from(stored.is_empty());
        for channel in [
            "ads",
            "wechat_oa",
            "crm",
            "mini_program",
            "app",
            "web",
            "pos",
            "customer_service",
        ] {
            let slot = kept.entry(channel).or_default();
            let (in_truth, in_stored) = (truth.contains(&channel), stored.contains(&channel));
            slot.0 += u64::from(in_truth);
            slot.1 += u64::from(in_truth && in_stored);
            slot.2 += u64::from(!in_truth && in_stored);
            let anothers = window
                .iter()
                .filter(|e| e.channel == channel)
                .all(|e| e.true_person.as_deref().is_some_and(|p| p != *buyer));
            slot.3 += u64::from(!in_truth && in_stored && anothers);
        }
    }
    println!(
        "\n=== true converting journeys against the buyer's stored touches before the same order: {found} orders found on a person, {anonymous} stored without a person, {missing} not stored, {empty} with no stored touch"
    );
    println!(
        "  {:<18}{:>16}{:>10}{:>10}{:>20}{:>20}",
        "channel", "true journeys", "kept", "share", "added (not true)", "another's events"
    );
    for (channel, (in_truth, both, added, anothers)) in &kept {
        println!(
            "  {channel:<18}{in_truth:>16}{both:>10}{:>9.1}%{added:>20}{anothers:>20}",
            *both as f64 * 100.0 / (*in_truth).max(1) as f64
        );
    }
}
