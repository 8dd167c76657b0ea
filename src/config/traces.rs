//! Settings of the traces (OpenTelemetry, issue 11): the collector spans go to, and how many are kept.

use serde::Deserialize;
use url::Url;

use super::Problems;

/// Traces (OpenTelemetry, issue 11): where spans go. Off unless `otlp_endpoint` is set.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TraceSettings {
    /// The OTLP/HTTP collector's address (`http://127.0.0.1:4318`); spans go to its `/v1/traces`.
    #[serde(default)]
    pub otlp_endpoint: Option<Url>,
    /// The share of traces pforte starts that are recorded (0.0 to 1.0); a trace an online service
    /// started keeps that service's decision.
    #[serde(default = "default_sample_ratio")]
    pub sample_ratio: f64,
}

impl Default for TraceSettings {
    fn default() -> Self {
        TraceSettings { otlp_endpoint: None, sample_ratio: default_sample_ratio() }
    }
}

fn default_sample_ratio() -> f64 {
    1.0
}

impl TraceSettings {
    pub(super) fn validate(&self, problems: &mut Problems) {
        if let Some(url) = &self.otlp_endpoint {
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                problems.push(
                    "settings",
                    "traces.otlp_endpoint",
                    "must be an http or https URL of an OTLP/HTTP collector",
                );
            }
            // The address may reach the log (an exporter that cannot be built names it), so the
            // collector's credentials belong in OTEL_EXPORTER_OTLP_HEADERS, not in the URL.
            if !url.username().is_empty() || url.password().is_some() {
                problems.push("settings", "traces.otlp_endpoint", "must not carry a user or password");
            }
            if url.query().is_some() || url.fragment().is_some() {
                problems.push("settings", "traces.otlp_endpoint", "must not carry a query or fragment");
            }
        }
        if !(0.0..=1.0).contains(&self.sample_ratio) {
            problems.push("settings", "traces.sample_ratio", "must be between 0.0 and 1.0");
        }
    }
}
