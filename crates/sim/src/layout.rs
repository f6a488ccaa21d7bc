//! The output layout of a template: every file, its format, columns, zone and channel, and the
//! DST transitions inside the period that make some of its local times nonexistent or ambiguous.

use chrono::{Offset, TimeZone};
use chrono_tz::Tz;

use crate::SimError;
use crate::template::Template;

/// Line format of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileFormat {
    /// One JSON object per line.
    Jsonl,
    /// CSV with a header line.
    Csv,
}

/// A DST transition: at `at_ms` (UTC) the zone's offset changes from `before_s` to `after_s`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// The instant of the change.
    pub at_ms: i64,
    /// UTC offset before, seconds.
    pub before_s: i32,
    /// UTC offset after, seconds.
    pub after_s: i32,
}

/// One output file.
#[derive(Debug, Clone)]
pub struct FileSpec {
    /// Path relative to the output directory.
    pub path: String,
    /// Line format.
    pub format: FileFormat,
    /// Column names (CSV header, JSON keys of business records); empty for SDK files.
    pub header: Vec<&'static str>,
    /// Zone of local times written in the file.
    pub tz: Tz,
    /// Zone name, for the manifest and converted events.
    pub tz_name: &'static str,
    /// Column holding the record's time, if any.
    pub time_column: Option<usize>,
    /// Whether local times are written without an offset (and so can hit DST gaps/overlaps).
    pub naive_local_time: bool,
    /// Whether rows are aggregates over persons (ad daily reports) rather than person records.
    pub aggregate: bool,
    /// Channel name when records are streamed.
    pub channel: &'static str,
    /// Source id when records are streamed.
    pub source: String,
    /// First transition to a later offset (a gap) within the period, if any.
    pub gap: Option<Transition>,
    /// First transition to an earlier offset (an overlap) within the period, if any.
    pub overlap: Option<Transition>,
}

/// The stored channel of what opened a session, which its events carry as `utm_source`
/// (the brand tags its ad landings, message links and store QR codes with the channel).
pub mod referrer {
    /// A paid ad's landing.
    pub const ADS: &str = "ads";
    /// An official-account menu, article or template message.
    pub const OFFICIAL_ACCOUNT: &str = "wechat_oa";
    /// A CRM SMS or push message's link.
    pub const CRM: &str = "crm";
    /// A store's check-in QR code.
    pub const STORE: &str = "pos";
}

/// Indices of the fixed files; POS and ad files follow them.
pub mod ids {
    /// App SDK events.
    pub const SDK_APP: usize = 0;
    /// Mini-program SDK events.
    pub const SDK_MINI: usize = 1;
    /// Web SDK events.
    pub const SDK_WEB: usize = 2;
    /// Official-account event pushes.
    pub const OA_EVENTS: usize = 3;
    /// Official-account follower info (openid → unionid).
    pub const OA_USERS: usize = 4;
    /// CRM members export at period start.
    pub const CRM_MEMBERS: usize = 5;
    /// CRM update files.
    pub const CRM_UPDATES: usize = 6;
    /// CRM member orders.
    pub const CRM_ORDERS: usize = 7;
    /// CRM marketing sends.
    pub const CRM_SENDS: usize = 8;
    /// Marketplace order log.
    pub const MARKET: usize = 9;
    /// Web shop order log.
    pub const WEBSHOP: usize = 10;
    /// Customer-service tickets.
    pub const TICKETS: usize = 11;
    /// Survey responses.
    pub const SURVEYS: usize = 12;
    /// First POS file.
    pub const POS0: usize = 13;
}

/// Column positions shared by generator and verifier.
pub mod cols {
    /// POS: order id, store, local time, member card, phone, amount, items, cashier, payment.
    pub const POS: [&str; 9] = [
        "order_id",
        "store_id",
        "order_time",
        "member_card",
        "phone",
        "amount",
        "items",
        "cashier",
        "payment",
    ];
    /// CRM members and updates.
    pub const CRM_MEMBERS: [&str; 10] = [
        "crm_id",
        "member_card",
        "phone",
        "email",
        "tier",
        "home_store",
        "joined_at",
        "consent_marketing",
        "consent_sms",
        "exported_at",
    ];
    /// CRM update rows.
    pub const CRM_UPDATES: [&str; 8] = [
        "crm_id",
        "member_card",
        "change",
        "phone",
        "email",
        "consent_marketing",
        "consent_sms",
        "updated_at",
    ];
    /// CRM member orders.
    pub const CRM_ORDERS: [&str; 8] = [
        "crm_id",
        "member_card",
        "order_id",
        "order_source",
        "store_id",
        "amount",
        "points",
        "order_time",
    ];
    /// CRM sends.
    pub const CRM_SENDS: [&str; 5] = ["send_id", "crm_id", "phone", "campaign", "sent_at"];
    /// Marketplace / web shop order logs.
    pub const ORDERS: [&str; 8] = [
        "event",
        "order_id",
        "buyer_id",
        "phone",
        "amount",
        "items",
        "event_time",
        "shop",
    ];
    /// Tickets.
    pub const TICKETS: [&str; 8] = [
        "ticket_id",
        "created_at",
        "contact_channel",
        "phone",
        "member_card",
        "category",
        "status",
        "closed_at",
    ];
    /// Surveys.
    pub const SURVEYS: [&str; 7] = [
        "response_id",
        "submitted_at",
        "phone",
        "member_card",
        "touchpoint",
        "nps",
        "csat",
    ];
    /// Official-account pushes (WeChat's own field names).
    pub const OA_EVENTS: [&str; 6] = [
        "ToUserName",
        "FromUserName",
        "CreateTime",
        "MsgType",
        "Event",
        "EventKey",
    ];
    /// Official-account follower info.
    pub const OA_USERS: [&str; 5] = [
        "openid",
        "unionid",
        "subscribe",
        "subscribe_time",
        "subscribe_scene",
    ];
    /// Ad daily reports.
    pub const AD_DAILY: [&str; 7] = [
        "date",
        "campaign_id",
        "campaign_name",
        "impressions",
        "clicks",
        "spend",
        "currency",
    ];
    /// Ad click logs.
    pub const AD_CLICKS: [&str; 6] = [
        "click_id",
        "click_time",
        "campaign_id",
        "ad_id",
        "landing",
        "os",
    ];
}

/// The files of a template, in id order.
#[derive(Debug, Clone)]
pub struct Layout {
    /// All files.
    pub files: Vec<FileSpec>,
    /// Id of the first ad file; platform `p` has daily `ad0 + 2p` and clicks `ad0 + 2p + 1`.
    pub ad0: usize,
}

impl Layout {
    /// Builds the layout of `t` for the period `[start_ms, end_ms)`.
    #[expect(
        clippy::too_many_lines,
        reason = "lays out a template's whole brand (stores, campaigns, channels) in the order of its random draws"
    )]
    pub fn new(t: &Template, start_ms: i64, end_ms: i64) -> Result<Layout, SimError> {
        let brand_tz = "Asia/Shanghai";
        let mut files = Vec::new();
        let mut add = |path: String,
                       format: FileFormat,
                       header: &[&'static str],
                       tz_name: &'static str,
                       time_column: Option<usize>,
                       naive: bool,
                       channel: &'static str|
         -> Result<(), SimError> {
            let tz: Tz = tz_name
                .parse()
                .map_err(|_| SimError::InvalidArgument(format!("unknown time zone {tz_name}")))?;
            let (gap, overlap) = if naive {
                transitions(tz, start_ms, end_ms)
            } else {
                (None, None)
            };
            let source = format!(
                "{}-{}",
                t.brand,
                path.split('.')
                    .next()
                    .unwrap_or(&path)
                    .replace(['/', '_'], "-")
            );
            files.push(FileSpec {
                path,
                format,
                header: header.to_vec(),
                tz,
                tz_name,
                time_column,
                naive_local_time: naive,
                aggregate: false,
                channel,
                source,
                gap,
                overlap,
            });
            Ok(())
        };
        let p = &t.paths;
        add(
            "sdk/app.jsonl".into(),
            FileFormat::Jsonl,
            &[],
            "UTC",
            None,
            false,
            "app",
        )?;
        add(
            "sdk/mini_program.jsonl".into(),
            FileFormat::Jsonl,
            &[],
            "UTC",
            None,
            false,
            "mini_program",
        )?;
        add(
            "sdk/web.jsonl".into(),
            FileFormat::Jsonl,
            &[],
            "UTC",
            None,
            false,
            "web",
        )?;
        add(
            "wechat/oa_events.jsonl".into(),
            FileFormat::Jsonl,
            &cols::OA_EVENTS,
            "UTC",
            Some(2),
            false,
            "wechat_oa",
        )?;
        add(
            "wechat/oa_users.jsonl".into(),
            FileFormat::Jsonl,
            &cols::OA_USERS,
            "UTC",
            Some(3),
            false,
            "wechat_oa",
        )?;
        add(
            p.crm_members.into(),
            FileFormat::Csv,
            &cols::CRM_MEMBERS,
            brand_tz,
            Some(6),
            true,
            "crm",
        )?;
        add(
            p.crm_updates.into(),
            FileFormat::Csv,
            &cols::CRM_UPDATES,
            brand_tz,
            Some(7),
            true,
            "crm",
        )?;
        add(
            p.crm_orders.into(),
            FileFormat::Csv,
            &cols::CRM_ORDERS,
            brand_tz,
            Some(7),
            true,
            "crm",
        )?;
        add(
            p.crm_sends.into(),
            FileFormat::Csv,
            &cols::CRM_SENDS,
            brand_tz,
            Some(4),
            true,
            "crm",
        )?;
        add(
            p.market_orders.into(),
            FileFormat::Jsonl,
            &cols::ORDERS,
            brand_tz,
            Some(6),
            true,
            "marketplace",
        )?;
        add(
            p.web_orders.into(),
            FileFormat::Jsonl,
            &cols::ORDERS,
            brand_tz,
            Some(6),
            false,
            "webshop",
        )?;
        add(
            p.tickets.into(),
            FileFormat::Csv,
            &cols::TICKETS,
            brand_tz,
            Some(1),
            true,
            "customer_service",
        )?;
        add(
            p.surveys.into(),
            FileFormat::Csv,
            &cols::SURVEYS,
            brand_tz,
            Some(1),
            true,
            "survey",
        )?;
        for pf in t.pos_files {
            add(
                pf.path.into(),
                FileFormat::Csv,
                &cols::POS,
                pf.tz,
                Some(2),
                true,
                "pos",
            )?;
        }
        let ad0 = 13 + t.pos_files.len();
        for pl in t.platforms {
            add(
                format!("ads/{}_daily.csv", pl.name),
                FileFormat::Csv,
                &cols::AD_DAILY,
                pl.tz,
                Some(0),
                false,
                "ads",
            )?;
            add(
                format!("ads/{}_clicks.csv", pl.name),
                FileFormat::Csv,
                &cols::AD_CLICKS,
                pl.tz,
                Some(1),
                true,
                "ads",
            )?;
        }
        for pl in 0..t.platforms.len() {
            files[ad0 + 2 * pl].aggregate = true;
        }
        Ok(Layout { files, ad0 })
    }
}

fn offset_at(tz: Tz, ms: i64) -> i32 {
    match chrono::DateTime::from_timestamp_millis(ms) {
        Some(dt) => tz
            .offset_from_utc_datetime(&dt.naive_utc())
            .fix()
            .local_minus_utc(),
        None => 0,
    }
}

/// Finds the first gap and the first overlap of `tz` in `[start_ms, end_ms)`, to the minute.
pub fn transitions(tz: Tz, start_ms: i64, end_ms: i64) -> (Option<Transition>, Option<Transition>) {
    const HOUR: i64 = 3_600_000;
    let (mut gap, mut overlap) = (None, None);
    let mut t = start_ms;
    let mut off = offset_at(tz, t);
    while t + HOUR <= end_ms {
        let next = offset_at(tz, t + HOUR);
        if next != off {
            // Narrow the change down to the minute inside this hour.
            let (mut lo, mut hi) = (t, t + HOUR);
            while hi - lo > 60_000 {
                let mid = lo + (hi - lo) / 2;
                if offset_at(tz, mid) == off {
                    lo = mid
                } else {
                    hi = mid
                }
            }
            let tr = Transition {
                at_ms: hi,
                before_s: off,
                after_s: next,
            };
            if next > off && gap.is_none() {
                gap = Some(tr);
            } else if next < off && overlap.is_none() {
                overlap = Some(tr);
            }
        }
        off = next;
        t += HOUR;
    }
    (gap, overlap)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_sydney_overlap_and_los_angeles_gap_in_2026() {
        let start = 1_767_225_600_000; // 2026-01-01
        let end = start + 181 * 86_400_000;
        let (gap, overlap) = transitions(chrono_tz::Australia::Sydney, start, end);
        assert!(gap.is_none());
        let o = overlap.expect("sydney dst ends in april");
        assert_eq!((o.before_s, o.after_s), (11 * 3600, 10 * 3600));
        let (gap, _) = transitions(chrono_tz::America::Los_Angeles, start, end);
        let g = gap.expect("los angeles dst starts in march");
        // 2026-03-08 10:00 UTC
        assert_eq!(g.at_ms, 1_772_964_000_000);
        assert_eq!(
            transitions(chrono_tz::Asia::Shanghai, start, end),
            (None, None)
        );
    }

    /// A session's `utm_source` names the stored channel of what opened it, so a reader of
    /// referrers credits that channel: each must be the channel of one of the sources.
    #[test]
    fn every_referrer_is_the_channel_of_a_source() {
        let start = 1_767_225_600_000;
        for kind in [crate::TemplateKind::Retail, crate::TemplateKind::Healthcare] {
            let layout = match Layout::new(crate::template::get(kind), start, start + 86_400_000) {
                Ok(layout) => layout,
                Err(err) => panic!("{kind:?}: {err}"),
            };
            for name in [
                referrer::ADS,
                referrer::OFFICIAL_ACCOUNT,
                referrer::CRM,
                referrer::STORE,
            ] {
                assert!(
                    layout.files.iter().any(|f| f.channel == name),
                    "{kind:?}: no source has the channel {name}"
                );
            }
        }
    }
}
