//! The person-by-person engine. Each person is generated from their own random streams (one for
//! the journey, one for the planted mess, so changing a defect rate never changes a journey),
//! into a buffer that is written out and cleared before the next person.
//!
//! Memory: the only state kept across persons is [`Stats`] — fixed-size counters, the true
//! contribution sums per channel, and the ad click counts per (campaign, day), which are
//! bounded by campaigns × days and independent of the number of persons. Shared store devices
//! are derived from the seed and site index, not stored. Hence memory stays flat as persons grow.

pub mod chain;
mod journey;
mod mess;
pub use mess::{ID_COLUMNS, ZERO_ID};
mod rows;
mod sdk;

use std::collections::BTreeMap;

use crate::SimError;
use crate::config::{DefectKind, SimConfig};
use crate::layout::Layout;
use crate::person::Person;
use crate::record::Record;
use crate::rng::{self, SimRng};
use crate::template::{self, Template, Touch};

pub use journey::JourneyTruth;

/// Stream domains: persons' journeys, persons' mess, ad aggregate cells.
pub(crate) const DOMAIN_PERSON: u64 = 1;
pub(crate) const DOMAIN_MESS: u64 = 2;
pub(crate) const DOMAIN_ADS: u64 = 3;
/// Store check-ins draw from streams of their own (keyed by person and instant), so adding
/// them moved no other draw of a seed's output.
pub(crate) const DOMAIN_CHECKIN: u64 = 6;

/// Immutable run context.
#[derive(Debug)]
pub struct Ctx {
    /// The run configuration.
    pub cfg: SimConfig,
    /// The template.
    pub t: &'static Template,
    /// Output files.
    pub layout: Layout,
    /// Period start, epoch ms.
    pub start_ms: i64,
    /// Period end (exclusive), epoch ms.
    pub end_ms: i64,
    /// The chain model's walks (empty under the logistic model).
    pub(crate) walks: chain::Walks,
}

impl Ctx {
    /// Validates `cfg` and prepares the layout.
    pub fn new(cfg: SimConfig) -> Result<Ctx, SimError> {
        cfg.validate()?;
        let t = template::get(cfg.template);
        let (start_ms, end_ms) = (cfg.start_ms(), cfg.end_ms());
        let layout = Layout::new(t, start_ms, end_ms)?;
        let walks = match cfg.conversion_model {
            crate::config::ConversionModel::Chain => chain::Walks::of(t),
            crate::config::ConversionModel::Logistic => chain::Walks::default(),
        };
        Ok(Ctx {
            cfg,
            t,
            layout,
            start_ms,
            end_ms,
            walks,
        })
    }

    /// The shared store iPad `n` (0 or 1) of site `site`: derived, not stored.
    pub fn store_device(&self, site: usize, n: u64) -> crate::person::Device {
        let mut r = rng::stream(self.cfg.seed, 4, site as u64 * 16 + n);
        crate::person::Device {
            id: rng::uuid(&mut r),
            anon: rng::uuid(&mut r),
            os: "iPadOS",
            model: "iPad13,18",
            skew_ms: 0,
        }
    }
}

/// Counters and sums kept across persons; bounded, see the module docs.
#[derive(Debug, Clone, Default)]
pub struct Stats {
    /// Eligible opportunities per defect kind.
    pub eligible: [u64; DefectKind::ALL.len()],
    /// Opportunities spoiled per defect kind.
    pub planted: [u64; DefectKind::ALL.len()],
    /// Defect lines in the truth per kind (a spoiled session spans several records).
    pub defect_records: [u64; DefectKind::ALL.len()],
    /// Ad clicks per (campaign index, day index in the account's zone).
    pub ad_clicks: BTreeMap<(usize, i64), u64>,
    /// Expected removal effect per touch channel: Σ p(S) − p(S∖{c}).
    pub removal: [f64; 8],
    /// Expected Shapley share of the uplift p(S) − p(∅) per touch channel.
    pub shapley: [f64; 8],
    /// Chain model only: journeys per availability mask (bit `i`: channel `Touch::ALL[i]`
    /// could reach the person when the journey started); at most 256 entries.
    pub chain_journeys: BTreeMap<u8, u64>,
    /// Touches per channel.
    pub touches: [u64; 8],
    /// Journeys.
    pub journeys: u64,
    /// Sum of conversion probabilities (the chain model: from each journey's first channel).
    pub expected_conversions: f64,
    /// Sum of baseline probabilities p(∅) (logistic model only).
    pub baseline_conversions: f64,
    /// Drawn conversions.
    pub conversions: u64,
    /// Conversions per channel: app, mini-program, web, marketplace, store.
    pub conv_by_channel: [u64; 5],
    /// Revenue in minor units.
    pub revenue: i64,
    /// Persons who churned within the period.
    pub churned: u64,
    /// Persons who opted out within the period.
    pub opted_out: u64,
    /// Records generated (data lines, excluding headers and aggregate rows).
    pub records: u64,
}

/// Truth about a person beyond their records.
#[derive(Debug, Clone, Default)]
pub struct PersonOut {
    /// Records, in the person's time order.
    pub records: Vec<Record>,
    /// Journeys with their conversion model values.
    pub journeys: Vec<JourneyTruth>,
    /// Last activity before churn, when the person churned.
    pub last_activity_ms: Option<i64>,
}

/// The per-person generator state.
pub(crate) struct Gen<'a> {
    pub ctx: &'a Ctx,
    pub p: Person,
    pub rng: SimRng,
    pub mess: SimRng,
    pub stats: &'a mut Stats,
    pub out: &'a mut PersonOut,
    /// Per-person counter for deterministic business ids.
    pub seq: u32,
}

/// Generates person `idx` into `out` (cleared first) and returns the person.
pub fn generate_person(ctx: &Ctx, idx: u64, stats: &mut Stats, out: &mut PersonOut) -> Person {
    out.records.clear();
    out.journeys.clear();
    out.last_activity_ms = None;
    let mut rng = rng::stream(ctx.cfg.seed, DOMAIN_PERSON, idx);
    let mut p = Person::draw(ctx.t, ctx.cfg.seed, idx, ctx.start_ms, ctx.end_ms, &mut rng);
    share_phone(&ctx.cfg, &mut p);
    let mut g = Gen {
        ctx,
        p,
        rng,
        mess: rng::stream(ctx.cfg.seed, DOMAIN_MESS, idx),
        stats,
        out,
        seq: 0,
    };
    g.run();
    // Time order within a person; stable, so a retry stays right after its original.
    g.out.records.sort_by_key(|r| r.true_ms);
    g.stats.records += g.out.records.len() as u64;
    if let Some(churn) = g.p.churn_ms.filter(|c| *c < ctx.end_ms) {
        g.stats.churned += 1;
        g.out.last_activity_ms = g
            .out
            .records
            .iter()
            .map(|r| r.true_ms)
            .filter(|t| *t >= ctx.start_ms && *t < churn)
            .max();
    }
    g.p
}

/// Gives `p` the number their household shares, if it does (see [`crate::household`]).
fn share_phone(cfg: &SimConfig, p: &mut Person) {
    let Some(h) = crate::household::household_of(cfg, p.idx) else {
        return;
    };
    let first_number = || {
        let mut partner = rng::stream(cfg.seed, DOMAIN_PERSON, h.first);
        crate::person::own_phone(cfg.seed, h.first, &mut partner)
    };
    match (h.sharing, p.idx == h.first) {
        (crate::household::Sharing::Family, first) => {
            // Family members each hold their own member card: the case a phone must not
            // merge. A non-member joins the programme a while before the period.
            if p.member_from.is_none() {
                let days = 30 + i64::try_from(p.idx % 300).unwrap_or(0);
                p.member_from = Some(cfg.start_ms() - days * crate::DAY_MS);
            }
            if !first {
                p.phone = first_number();
            }
        }
        (crate::household::Sharing::Recycled, true) => {
            let new_number = crate::household::replacement_phone(cfg.seed, p.idx);
            p.phone_change = Some((h.handover_ms, new_number));
        }
        (crate::household::Sharing::Recycled, false) => {
            p.phone_change = Some((h.second_from_ms(), first_number()));
        }
    }
}

impl Gen<'_> {
    fn run(&mut self) {
        if let Some(m) = self.p.member_from {
            self.crm_member_export(m);
            self.maybe_opt_out(m);
        }
        self.journeys();
    }

    /// Next per-person sequence number, for business ids.
    pub fn next_seq(&mut self) -> u32 {
        self.seq += 1;
        self.seq
    }

    /// The touch channels available to the person at `ms`, as weights.
    pub fn touch_weights(&self, ms: i64) -> [f64; 8] {
        let mut w = self.ctx.t.touch_weights;
        for (i, touch) in Touch::ALL.iter().enumerate() {
            let ok = match touch {
                Touch::WechatOa | Touch::MiniProgram => self.p.has_wechat,
                Touch::App => self.p.has_app,
                Touch::CrmMessage => self.p.is_member(ms) && self.p.marketable(ms),
                Touch::PaidAds | Touch::Web | Touch::StoreVisit | Touch::CustomerService => true,
            };
            if !ok {
                w[i] = 0.0;
            }
        }
        w
    }
}
