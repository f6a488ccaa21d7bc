//! The BG/NBD probability-alive model (Fader, Hardie and Lee, 2005), and the machinery it
//! shares with its MBG/NBD variant (see `churn::mbgnbd`).
//!
//! The free functions here are BG/NBD's; `BetaGeoModel` names either model and offers the same
//! operations for both. `model` holds the parameters, the customer summary, the per-customer
//! likelihood and P(alive); `summary` builds summaries from raw purchase times; `likelihood` is
//! the fast total likelihood with its gradient; `optimize` and `fit` find the maximum-likelihood parameters;
//! `forecast` gives the expected purchases in a coming period.

pub mod fit;
pub mod forecast;
pub(crate) mod likelihood;
pub mod model;
pub(crate) mod optimize;
pub(crate) mod special;
pub mod summary;

pub use fit::{BgNbdFit, DEFAULT_WARM_START_SAMPLE, FitOptions, fit_bgnbd};
pub use forecast::{MAX_SERIES_TERMS, SIGMA_POINTS_FROM, expected_purchases};
pub use model::{
    BetaGeoModel, BgNbdParams, CustomerSummary, churn_score, customer_log_likelihood,
    log_likelihood, probability_alive,
};
pub use summary::{SummaryBuilder, TimeUnit};
