//! pforte's OpenAPI 3.1 documents: the payment API (`openapi/payment-api.yaml`) and the Datentransfer
//! API (`openapi/transfer-api.yaml`). Written by hand in YAML so they read well in review, compiled
//! into the binary, and served as written and as JSON (converted once, on first request) for tools
//! that only read JSON. The contract tests in `tests/api/openapi.rs` and `tests/api/transfer_openapi.rs`
//! validate real responses against them.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::Value;

use super::error::{ApiError, ErrorCode};
use crate::http::state::AppState;

pub(super) const PAYMENT_API_YAML: &str = include_str!("../../openapi/payment-api.yaml");
pub(super) const TRANSFER_API_YAML: &str = include_str!("../../openapi/transfer-api.yaml");

/// A document as JSON; an error names what does not parse (a test makes sure nothing does).
fn to_json(yaml: &str) -> Result<String, String> {
    let document: Value = serde_yaml_ng::from_str(yaml).map_err(|e| e.to_string())?;
    serde_json::to_string(&document).map_err(|e| e.to_string())
}

static PAYMENT_API_JSON: LazyLock<Result<String, String>> = LazyLock::new(|| to_json(PAYMENT_API_YAML));
static TRANSFER_API_JSON: LazyLock<Result<String, String>> = LazyLock::new(|| to_json(TRANSFER_API_YAML));

/// The documents change only with a new release; caches may keep them a little while.
const CACHE: &str = "public, max-age=300";

pub(super) fn router() -> Router<AppState> {
    Router::new()
        .route("/openapi/payment-api.yaml", get(|| async { yaml(PAYMENT_API_YAML) }))
        .route("/openapi/payment-api.json", get(|| async { json(&PAYMENT_API_JSON) }))
        .route("/openapi/transfer-api.yaml", get(|| async { yaml(TRANSFER_API_YAML) }))
        .route("/openapi/transfer-api.json", get(|| async { json(&TRANSFER_API_JSON) }))
}

fn yaml(document: &'static str) -> Response {
    ([(header::CONTENT_TYPE, "application/yaml"), (header::CACHE_CONTROL, CACHE)], document).into_response()
}

fn json(document: &Result<String, String>) -> Response {
    match document {
        Ok(text) => {
            ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, CACHE)], text.clone()).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "an embedded OpenAPI document does not parse");
            ApiError::new(ErrorCode::Internal, "The document cannot be shown.").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_embedded_document_is_openapi_3_1_in_yaml_and_converts_to_json() {
        let text = PAYMENT_API_JSON.as_ref().expect("the YAML parses");
        let document: Value = serde_json::from_str(text).expect("valid JSON");
        assert_eq!(document["openapi"], "3.1.0");
        // Exact money constraints survive the conversion as numbers, not strings.
        let money = &document["components"]["schemas"]["Money"];
        assert!(money["multipleOf"].is_number() && money["maximum"].is_number(), "{money}");
    }

    #[test]
    fn the_transfer_document_is_openapi_3_1_and_converts_to_json() {
        let text = TRANSFER_API_JSON.as_ref().expect("the YAML parses");
        let document: Value = serde_json::from_str(text).expect("valid JSON");
        assert_eq!(document["openapi"], "3.1.0");
        // A version that YAML would read as a number stays the string the metadata schema requires.
        assert_eq!(
            document["components"]["schemas"]["IdentificationReport"]["properties"]["version"]["const"],
            "1.0.0"
        );
    }
}
