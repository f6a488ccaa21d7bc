//! A person's true identity: every identifier each source will know them by, derived from the
//! seed and the person's index alone. Numbers that must be unique (phone, member card, CRM id,
//! user id) come from keyed bijections of the index, so two persons never collide by chance.

use rand::Rng;

use crate::rng::{self, SimRng};
use crate::template::Template;

/// The placeholder phone number cashiers type when a customer will not give theirs.
pub const PLACEHOLDER_PHONE: &str = "13800000000";

/// A device with its ids and clock error.
#[derive(Debug, Clone)]
pub struct Device {
    /// Device id (IDFV/Android id style UUID).
    pub id: String,
    /// SDK anonymous id of the install.
    pub anon: String,
    /// Operating system.
    pub os: &'static str,
    /// Model.
    pub model: &'static str,
    /// Device clock minus true time, milliseconds.
    pub skew_ms: i64,
}

/// Everything true about one person, plus the little state their journey accumulates.
#[derive(Debug, Clone)]
pub struct Person {
    /// Index in `0..persons`.
    pub idx: u64,
    /// True person id (`P00000042`).
    pub id: String,
    /// Mainland mobile number, 11 digits: the one held at the start of the period.
    pub phone: String,
    /// A change of number: from this instant (epoch ms) on, the person uses this one (a
    /// recycled number's holders, see [`crate::household`]).
    pub phone_change: Option<(i64, String)>,
    /// Email, if they have given one.
    pub email: Option<String>,
    /// Member card number (valid once a member).
    pub member_card: String,
    /// CRM id (valid once a member).
    pub crm_id: String,
    /// The brand's account id (app / web shop login).
    pub user_id: String,
    /// WeChat UnionID under the brand's open-platform account.
    pub unionid: String,
    /// OpenID scoped to the mini-program.
    pub mp_openid: String,
    /// OpenID scoped to the official account.
    pub oa_openid: String,
    /// Buyer id scoped to the marketplace shop.
    pub market_uid: String,
    /// Whether the person uses WeChat touchpoints.
    pub has_wechat: bool,
    /// Whether the person has the app.
    pub has_app: bool,
    /// Membership start (epoch ms); before the period means they are in the initial export.
    pub member_from: Option<i64>,
    /// Marketing opt-out instant, if any.
    pub optout_ms: Option<i64>,
    /// Churn instant (no activity after it), if any.
    pub churn_ms: Option<i64>,
    /// Home site index.
    pub site: usize,
    /// Personal log-odds shift of conversion.
    pub propensity: f64,
    /// Phone (app) device.
    pub app_dev: Device,
    /// Device running WeChat (mini-program).
    pub mp_dev: Device,
    /// Browser cookie id and clock error.
    pub web_dev: Device,
    /// Logged in to the app at least once.
    pub app_logged_in: bool,
    /// Authorised the mini-program to share their profile (UnionID) and phone.
    pub mp_authorised: bool,
    /// Follows the official account.
    pub oa_followed: bool,
}

const IOS_MODELS: [&str; 3] = ["iPhone15,2", "iPhone14,5", "iPhone16,1"];
const ANDROID_MODELS: [&str; 4] = ["HUAWEI P60", "Xiaomi 14", "OPPO Find X7", "vivo X100"];

fn device(rng: &mut SimRng, os_hint: Option<&'static str>) -> Device {
    let ios = match os_hint {
        Some(os) => os == "iOS",
        None => rng.random_bool(0.35),
    };
    let (os, model) = if ios {
        ("iOS", IOS_MODELS[rng.random_range(0..IOS_MODELS.len())])
    } else {
        (
            "Android",
            ANDROID_MODELS[rng.random_range(0..ANDROID_MODELS.len())],
        )
    };
    // Most clocks are within seconds; a few are minutes or an hour off (manual time setting).
    let skew_ms = match rng.random_range(0..100) {
        0..=84 => (rng::normal(rng) * 1_500.0) as i64,
        85..=97 => rng.random_range(-600_000..600_000),
        _ => rng.random_range(-3_600_000..3_600_000),
    };
    Device {
        id: rng::uuid(rng),
        anon: rng::uuid(rng),
        os,
        model,
        skew_ms,
    }
}

/// Person `idx`'s own number, drawn first from their stream `rng` (a fresh stream of theirs
/// gives the same number, which is how a household partner finds it).
pub fn own_phone(seed: u64, idx: u64, rng: &mut SimRng) -> String {
    const PREFIXES: [&str; 10] = [
        "138", "139", "136", "150", "151", "186", "187", "135", "188", "137",
    ];
    let suffix = rng::permute_decimal(idx, seed, 8);
    let phone = format!(
        "{}{suffix:08}",
        PREFIXES[rng.random_range(0..PREFIXES.len())]
    );
    if phone == PLACEHOLDER_PHONE {
        // The suffix is unique per person, so another prefix keeps the number unique.
        return format!("139{suffix:08}");
    }
    phone
}

impl Person {
    /// Draws person `idx` of the run; `start_ms..end_ms` is the period.
    pub fn draw(
        t: &Template,
        seed: u64,
        idx: u64,
        start_ms: i64,
        end_ms: i64,
        rng: &mut SimRng,
    ) -> Person {
        let phone = own_phone(seed, idx, rng);
        let email = rng.random_bool(0.45).then(|| {
            format!(
                "user{:09}@mail{}.example.cn",
                rng::permute_decimal(idx, seed ^ 3, 9),
                idx % 7
            )
        });
        let card = rng::permute_decimal(idx, seed ^ 1, 10);
        let crm = rng::permute_decimal(idx, seed ^ 2, 9);
        let uid = rng::permute_decimal(idx, seed ^ 4, 9);
        let has_wechat = rng.random_bool(0.88);
        let has_app = rng.random_bool(t.app_share);
        let period = end_ms - start_ms;
        let member_from = rng.random_bool(t.member_share).then(|| {
            start_ms
                - rng.random_range(1..(3 * 365)) * crate::DAY_MS
                - rng.random_range(0..crate::DAY_MS)
        });
        let churn_ms = rng
            .random_bool(0.22)
            .then(|| start_ms + period / 10 + rng.random_range(0..(period * 8 / 10)));
        let app_dev = device(rng, None);
        let mp_dev = device(rng, Some(app_dev.os));
        let mut web_dev = device(rng, Some(app_dev.os));
        web_dev.os = "Web";
        web_dev.model = if rng.random_bool(0.6) {
            "Chrome"
        } else {
            "Safari"
        };
        let weights: Vec<f64> = t.sites.iter().map(|s| s.weight).collect();
        Person {
            idx,
            id: format!("P{idx:08}"),
            phone,
            phone_change: None,
            email,
            member_card: format!("{card:010}"),
            crm_id: format!("C{crm:09}"),
            user_id: format!("U{uid:09}"),
            unionid: format!("o{}", rng::token(rng, 27)),
            mp_openid: format!("o{}", rng::token(rng, 27)),
            oa_openid: format!("o{}", rng::token(rng, 27)),
            market_uid: format!("tb{}", rng::token(rng, 14)),
            has_wechat,
            has_app,
            member_from,
            optout_ms: None,
            churn_ms,
            site: rng::weighted(rng, &weights),
            propensity: rng::normal(rng) * 0.5,
            app_dev,
            mp_dev,
            web_dev,
            app_logged_in: false,
            mp_authorised: false,
            oa_followed: false,
        }
    }

    /// The phone number the person uses at `ms`.
    pub fn phone_at(&self, ms: i64) -> &str {
        match &self.phone_change {
            Some((from, number)) if ms >= *from => number,
            _ => &self.phone,
        }
    }

    /// Whether the person is a member at `ms`.
    pub fn is_member(&self, ms: i64) -> bool {
        self.member_from.is_some_and(|m| m <= ms)
    }

    /// Whether marketing may reach the person at `ms`.
    pub fn marketable(&self, ms: i64) -> bool {
        self.optout_ms.is_none_or(|o| ms < o)
    }
}
