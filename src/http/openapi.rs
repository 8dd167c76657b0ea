//! The payment API's OpenAPI 3.1 document, `openapi/payment-api.yaml`: written by hand in YAML so it
//! reads well in review, compiled into the binary, and served as written and as JSON (converted
//! once, on first request) for tools that only read JSON. The contract tests in `tests/api/openapi.rs`
//! validate real responses against it.

use std::sync::LazyLock;

use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::Value;

use super::error::{ApiError, ErrorCode};
use crate::http::state::AppState;

pub(super) const PAYMENT_API_YAML: &str = include_str!("../../openapi/payment-api.yaml");

/// The document as JSON; an error names what does not parse (a test makes sure nothing does).
static PAYMENT_API_JSON: LazyLock<Result<String, String>> = LazyLock::new(|| {
    let document: Value = serde_yaml_ng::from_str(PAYMENT_API_YAML).map_err(|e| e.to_string())?;
    serde_json::to_string(&document).map_err(|e| e.to_string())
});

/// The document changes only with a new release; caches may keep it a little while.
const CACHE: &str = "public, max-age=300";

pub(super) fn router() -> Router<AppState> {
    Router::new().route("/openapi/payment-api.yaml", get(yaml)).route("/openapi/payment-api.json", get(json))
}

async fn yaml() -> Response {
    ([(header::CONTENT_TYPE, "application/yaml"), (header::CACHE_CONTROL, CACHE)], PAYMENT_API_YAML).into_response()
}

async fn json() -> Response {
    match &*PAYMENT_API_JSON {
        Ok(text) => {
            ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, CACHE)], text.clone()).into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "the embedded OpenAPI document does not parse");
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
}
