//! Layered configuration: compiled-in defaults, then an optional TOML file,
//! then `TOUCHLINE_` environment variables with `__` separating nested keys
//! (`TOUCHLINE_DATABASE__URL`). Validated once, at start.

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Toml};
use serde::de::DeserializeOwned;

/// The environment prefix of every setting.
pub const ENV_PREFIX: &str = "TOUCHLINE_";

/// Loads `T` from `file` (when given) and the environment; what neither
/// sets comes from `T`'s `#[serde(default)]`. `not_settings` names
/// `TOUCHLINE_` variables that mean something else (command-line options
/// read from the environment) and are not configuration keys.
pub fn load<T>(file: Option<&Path>, not_settings: &[&str]) -> Result<T, Box<figment::Error>>
where
    T: DeserializeOwned,
{
    let mut figment = Figment::new();
    if let Some(path) = file {
        figment = figment.merge(Toml::file_exact(path));
    }
    figment
        .merge(Env::prefixed(ENV_PREFIX).ignore(not_settings).split("__"))
        .extract()
        .map_err(Box::new)
}
