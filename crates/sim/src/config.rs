//! What a run is asked to produce: template, size, seed, period and the planted-mess rates.

use chrono::NaiveDate;
use serde::Serialize;

use crate::SimError;

/// Every kind of planted defect. Each has a configurable rate: the probability that an
/// eligible opportunity (a record, a session or a report row, see [`DefectKind::unit`]) is spoiled.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DefectKind {
    /// An SDK event sent under a legacy or misspelt name (`addToCart` for `add_to_cart`).
    EventAlias,
    /// An SDK event re-sent with the same message id (client retry after a lost acknowledgement).
    SdkRetryDuplicate,
    /// An ad daily report row delivered twice.
    AdReportResent,
    /// A member's store order present both in the POS export and in the CRM order export.
    CrossSourceDuplicate,
    /// A timestamp that cannot be parsed or is of the wrong unit.
    BadTimestamp,
    /// A local date written `dd/mm/yyyy` where day and month could be swapped.
    AmbiguousTimestamp,
    /// A record without the identifier its source always promises.
    MissingId,
    /// A NUL byte inside a text field.
    NulByte,
    /// A phone number that is not a valid mainland mobile number.
    InvalidPhone,
    /// A number delivered as text (`"¥129.00"`, `"129"`).
    WrongType,
    /// A local time that does not exist (clock not moved forward at a DST start).
    DstGap,
    /// A local time that exists twice (at a DST end).
    DstOverlap,
    /// A placeholder identifier (`13800000000`, `unknown`, all zeros).
    PlaceholderId,
    /// A session on a device shared by many customers (a store iPad).
    SharedDevice,
    /// A session delivered hours or days after it happened (offline buffering).
    LateArrival,
}

impl DefectKind {
    /// All kinds, in manifest order.
    pub const ALL: [DefectKind; 15] = [
        DefectKind::EventAlias,
        DefectKind::SdkRetryDuplicate,
        DefectKind::AdReportResent,
        DefectKind::CrossSourceDuplicate,
        DefectKind::BadTimestamp,
        DefectKind::AmbiguousTimestamp,
        DefectKind::MissingId,
        DefectKind::NulByte,
        DefectKind::InvalidPhone,
        DefectKind::WrongType,
        DefectKind::DstGap,
        DefectKind::DstOverlap,
        DefectKind::PlaceholderId,
        DefectKind::SharedDevice,
        DefectKind::LateArrival,
    ];

    /// The snake_case name used in truth files, the manifest and `--rate`.
    pub fn name(self) -> &'static str {
        match self {
            DefectKind::EventAlias => "event_alias",
            DefectKind::SdkRetryDuplicate => "sdk_retry_duplicate",
            DefectKind::AdReportResent => "ad_report_resent",
            DefectKind::CrossSourceDuplicate => "cross_source_duplicate",
            DefectKind::BadTimestamp => "bad_timestamp",
            DefectKind::AmbiguousTimestamp => "ambiguous_timestamp",
            DefectKind::MissingId => "missing_id",
            DefectKind::NulByte => "nul_byte",
            DefectKind::InvalidPhone => "invalid_phone",
            DefectKind::WrongType => "wrong_type",
            DefectKind::DstGap => "dst_gap",
            DefectKind::DstOverlap => "dst_overlap",
            DefectKind::PlaceholderId => "placeholder_id",
            DefectKind::SharedDevice => "shared_device",
            DefectKind::LateArrival => "late_arrival",
        }
    }

    /// Parses a name as printed by [`DefectKind::name`].
    pub fn from_name(name: &str) -> Option<DefectKind> {
        DefectKind::ALL.into_iter().find(|k| k.name() == name)
    }

    /// What one eligible opportunity is, for reading the configured rate.
    pub fn unit(self) -> &'static str {
        match self {
            DefectKind::EventAlias => "sdk track event with an aliased name",
            DefectKind::SdkRetryDuplicate | DefectKind::MissingId | DefectKind::NulByte => "record",
            DefectKind::AdReportResent => "ad daily report row",
            DefectKind::CrossSourceDuplicate => "member store order",
            DefectKind::BadTimestamp | DefectKind::WrongType => "record with that field",
            DefectKind::AmbiguousTimestamp => "csv local time with day <= 12 and day != month",
            DefectKind::InvalidPhone | DefectKind::PlaceholderId => "record carrying that id",
            DefectKind::DstGap | DefectKind::DstOverlap => {
                "record of a source in a zone with that transition"
            }
            DefectKind::SharedDevice => "store visit",
            DefectKind::LateArrival => "sdk session",
        }
    }

    /// The default rate of this kind.
    pub fn default_rate(self) -> f64 {
        match self {
            DefectKind::EventAlias => 0.05,
            DefectKind::SdkRetryDuplicate => 0.01,
            DefectKind::AdReportResent => 0.03,
            DefectKind::CrossSourceDuplicate => 0.5,
            DefectKind::BadTimestamp => 0.002,
            DefectKind::AmbiguousTimestamp => 0.02,
            DefectKind::MissingId => 0.003,
            DefectKind::NulByte => 0.001,
            DefectKind::InvalidPhone => 0.01,
            DefectKind::WrongType => 0.005,
            DefectKind::DstGap => 0.01,
            DefectKind::DstOverlap => 0.01,
            DefectKind::PlaceholderId => 0.01,
            DefectKind::SharedDevice => 0.3,
            DefectKind::LateArrival => 0.02,
        }
    }
}

/// The configured rate per defect kind.
#[derive(Debug, Clone, PartialEq)]
pub struct Rates([f64; DefectKind::ALL.len()]);

impl Default for Rates {
    fn default() -> Self {
        Rates(DefectKind::ALL.map(DefectKind::default_rate))
    }
}

impl Rates {
    /// Every rate zero: clean data (useful as a baseline).
    pub fn none() -> Self {
        Rates([0.0; DefectKind::ALL.len()])
    }

    /// The rate of `kind`.
    pub fn get(&self, kind: DefectKind) -> f64 {
        self.0[kind as usize]
    }

    /// Sets the rate of `kind`, rejecting values outside `0..=1`.
    pub fn set(&mut self, kind: DefectKind, rate: f64) -> Result<(), SimError> {
        if !(0.0..=1.0).contains(&rate) {
            return Err(SimError::InvalidArgument(format!(
                "rate for {} must be within 0..=1, got {rate}",
                kind.name()
            )));
        }
        self.0[kind as usize] = rate;
        Ok(())
    }

    /// Multiplies every rate by `factor` (capped at 1).
    pub fn scale(&mut self, factor: f64) {
        for r in &mut self.0 {
            *r = (*r * factor).clamp(0.0, 1.0);
        }
    }

    /// Applies a `kind=rate` override as given on the command line.
    pub fn apply_override(&mut self, spec: &str) -> Result<(), SimError> {
        let (name, value) = spec.split_once('=').ok_or_else(|| {
            SimError::InvalidArgument(format!("rate override {spec:?} is not kind=value"))
        })?;
        let kind = DefectKind::from_name(name.trim())
            .ok_or_else(|| SimError::InvalidArgument(format!("unknown defect kind {name:?}")))?;
        let rate: f64 = value.trim().parse().map_err(|_| {
            SimError::InvalidArgument(format!("rate {value:?} for {name} is not a number"))
        })?;
        self.set(kind, rate)
    }
}

/// Size presets from the issue: `small` for the demo, `medium` for tests, `large` for benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Preset {
    /// About 1,000 persons.
    Small,
    /// About 20,000 persons.
    Medium,
    /// 1,000,000 persons (at least 50 million records).
    Large,
}

impl Preset {
    /// Number of persons of the preset.
    pub fn persons(self) -> u64 {
        match self {
            Preset::Small => 1_000,
            Preset::Medium => 20_000,
            Preset::Large => 1_000_000,
        }
    }
}

/// Industry templates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TemplateKind {
    /// A mother-and-baby retail brand.
    Retail,
    /// A private hospital group (appointments, registration, consultations, follow-ups).
    Healthcare,
}

/// How a journey's touches and its conversion are drawn; the truth states each model's own
/// quantities (`truth/conversion_model.json`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConversionModel {
    /// Touches drawn independently; the journey converts with probability
    /// `σ(intercept + propensity + Σ β_c)` over its distinct channels. The truth states each
    /// channel's expected removal effect `p(S) − p(S∖{c})` and Shapley share of the uplift.
    #[default]
    Logistic,
    /// Touches walk the template's first-order chain over the channels until it converts or
    /// leaves ([`crate::template::Chain`]). The truth states each channel's removal effect
    /// on the expected chain, as Markov attribution defines it, computed exactly.
    Chain,
}

/// A fully resolved run configuration.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Industry template.
    pub template: TemplateKind,
    /// Number of persons.
    pub persons: u64,
    /// Seed of every random stream.
    pub seed: u64,
    /// Last day of the period (inclusive, UTC).
    pub end_date: NaiveDate,
    /// Length of the period in days.
    pub days: u32,
    /// Planted-mess rates.
    pub rates: Rates,
    /// Households whose members share a phone number (see [`crate::household`]).
    pub phones: PhoneSharing,
    /// How journeys and their conversions are drawn.
    pub conversion_model: ConversionModel,
}

/// Fractions of households (pairs of persons) sharing one phone number. Not defects: real
/// customers do this, and identity must tell the members apart.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PhoneSharing {
    /// Families using one number, each member with their own member card and accounts.
    pub family: f64,
    /// Numbers recycled by the carrier from one member to the other.
    pub recycled: f64,
}

impl Default for PhoneSharing {
    fn default() -> Self {
        PhoneSharing {
            family: 0.02,
            recycled: 0.01,
        }
    }
}

impl SimConfig {
    /// A configuration with defaults: 180 days ending 2026-06-30, default rates.
    pub fn new(template: TemplateKind, persons: u64, seed: u64) -> Self {
        SimConfig {
            template,
            persons,
            seed,
            end_date: default_end_date(),
            days: 180,
            rates: Rates::default(),
            phones: PhoneSharing::default(),
            conversion_model: ConversionModel::default(),
        }
    }

    /// Epoch milliseconds of the period's first instant (start of the first day, UTC).
    pub fn start_ms(&self) -> i64 {
        let first = self.end_date - chrono::Duration::days(i64::from(self.days) - 1);
        first
            .and_hms_opt(0, 0, 0)
            .map(|t| t.and_utc().timestamp_millis())
            .unwrap_or(0)
    }

    /// Epoch milliseconds just after the period's last instant.
    pub fn end_ms(&self) -> i64 {
        self.start_ms() + i64::from(self.days) * crate::DAY_MS
    }

    /// Rejects configurations the generator cannot honour.
    pub fn validate(&self) -> Result<(), SimError> {
        if self.persons == 0 || self.persons > 100_000_000 {
            return Err(SimError::InvalidArgument(format!(
                "persons must be within 1..=100000000, got {}",
                self.persons
            )));
        }
        if !(7..=3660).contains(&self.days) {
            return Err(SimError::InvalidArgument(format!(
                "days must be within 7..=3660, got {}",
                self.days
            )));
        }
        let PhoneSharing { family, recycled } = self.phones;
        if !(family >= 0.0 && recycled >= 0.0 && family + recycled <= 1.0) {
            return Err(SimError::InvalidArgument(format!(
                "family and recycled phone shares must be non-negative and sum to at most 1, \
                 got {family} and {recycled}"
            )));
        }
        Ok(())
    }
}

/// The fixed default end of the period; never the wall clock, so runs are reproducible.
pub fn default_end_date() -> NaiveDate {
    NaiveDate::from_ymd_opt(2026, 6, 30).unwrap_or_default()
}
