//! Telemetry settings, read by each service's configuration loader.

use serde::Deserialize;

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable when stderr is a terminal, JSON otherwise (containers, CI, files).
    #[default]
    Auto,
    /// Human-readable single-line records, coloured when stderr is a terminal.
    Pretty,
    /// One JSON object per line, with the current span's fields.
    Json,
}

/// Settings for [`crate::init`]. Every field has a default, so an empty section is valid.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TelemetryConfig {
    /// Reported as the OpenTelemetry `service.name` resource attribute.
    pub service_name: String,
    /// Log line format.
    pub log_format: LogFormat,
    /// `EnvFilter` directives such as `info,touchline_identity=debug`. A non-empty `RUST_LOG`
    /// environment variable takes precedence, so an operator can raise verbosity without
    /// touching the configuration file.
    pub filter: String,
    /// OTLP/gRPC collector endpoint such as `http://127.0.0.1:4317`. When unset, spans still
    /// get trace ids (so context propagates and logs correlate) but are not exported.
    pub otlp_endpoint: Option<String>,
    /// Address of the Prometheus scrape endpoint (`GET /metrics`), such as `0.0.0.0:9464`.
    /// When unset the binary serves none; metrics still reach OTLP when that is configured.
    /// Read by the binary, which binds it and calls [`crate::metrics::serve_metrics`].
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// A file the log lines are appended to instead of stderr (JSON lines).
    pub log_file: Option<std::path::PathBuf>,
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        Self {
            service_name: "touchline".to_owned(),
            log_format: LogFormat::Auto,
            filter: "info".to_owned(),
            otlp_endpoint: None,
            metrics_listen: None,
            log_file: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_section_takes_defaults() {
        let cfg: TelemetryConfig = serde_json::from_str("{}").expect("empty object parses");
        assert_eq!(cfg, TelemetryConfig::default());
        assert_eq!(cfg.service_name, "touchline");
        assert_eq!(cfg.filter, "info");
        assert_eq!(cfg.log_format, LogFormat::Auto);
        assert_eq!(cfg.otlp_endpoint, None);
        assert_eq!(cfg.metrics_listen, None);
    }

    #[test]
    fn fields_parse_from_lowercase_names() {
        let cfg: TelemetryConfig = serde_json::from_str(
            r#"{"service_name":"identity","log_format":"json","filter":"debug",
                "otlp_endpoint":"http://127.0.0.1:4317","metrics_listen":"127.0.0.1:9464"}"#,
        )
        .expect("full object parses");
        assert_eq!(cfg.service_name, "identity");
        assert_eq!(cfg.log_format, LogFormat::Json);
        assert_eq!(cfg.filter, "debug");
        assert_eq!(cfg.otlp_endpoint.as_deref(), Some("http://127.0.0.1:4317"));
        assert_eq!(
            cfg.metrics_listen,
            Some(std::net::SocketAddr::from(([127, 0, 0, 1], 9464)))
        );

        let pretty: TelemetryConfig =
            serde_json::from_str(r#"{"log_format":"pretty"}"#).expect("pretty parses");
        assert_eq!(pretty.log_format, LogFormat::Pretty);
    }

    #[test]
    fn unknown_fields_and_formats_are_rejected() {
        assert!(serde_json::from_str::<TelemetryConfig>(r#"{"filtr":"debug"}"#).is_err());
        assert!(serde_json::from_str::<TelemetryConfig>(r#"{"log_format":"xml"}"#).is_err());
    }
}
