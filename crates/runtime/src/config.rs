//! Layered configuration: compiled-in defaults, then an optional TOML file,
//! then `TOUCHLINE_` environment variables with `__` separating nested keys
//! (`TOUCHLINE_DATABASE__URL`). Validated once, at start.

use std::path::Path;

use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// The environment prefix of every setting.
pub const ENV_PREFIX: &str = "TOUCHLINE_";

/// Loads `T` from its defaults, `file` (when given) and the environment.
pub fn load<T>(file: Option<&Path>) -> Result<T, Box<figment::Error>>
where
    T: DeserializeOwned + Serialize + Default,
{
    let mut figment = Figment::from(Serialized::defaults(T::default()));
    if let Some(path) = file {
        figment = figment.merge(Toml::file_exact(path));
    }
    figment
        .merge(Env::prefixed(ENV_PREFIX).split("__"))
        .extract()
        .map_err(Box::new)
}
