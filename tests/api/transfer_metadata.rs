//! FIT-Connect's official metadata schema 1.0.0 (issue 15 item 9): what a sender builds around
//! pforte's evidence must validate against it. The schema is FITKO's, shipped in their Python SDK on
//! PyPI; `tests/interop/fitconnect/fetch-metadata-schema.sh` places it (CI runs it). Without it the
//! checks here are reported as ignored and the end-to-end test skips its schema step.

use anyhow::{anyhow, Context};
use serde_json::{json, Value};

use crate::helpers::{TestContext, TestResult, MANIFEST_DIR};

fn schema_path() -> std::path::PathBuf {
    std::path::Path::new(MANIFEST_DIR).join("tests/interop/fitconnect/metadata.schema.v1.0.0.json")
}

pub fn official_schema_present() -> bool {
    schema_path().is_file()
}

/// The official schema as a JSON Schema 2020-12 validator (formats checked), if it is here.
pub fn official_schema() -> anyhow::Result<Option<jsonschema::Validator>> {
    if !official_schema_present() {
        println!("FIT-Connect metadata schema 1.0.0 not here: run tests/interop/fitconnect/fetch-metadata-schema.sh");
        return Ok(None);
    }
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(schema_path())?)?;
    anyhow::ensure!(
        schema["$id"] == "https://schema.fitko.de/fit-connect/metadata/1.0.0/metadata.schema.json",
        "not the official schema: {}",
        schema["$id"]
    );
    let validator = jsonschema::draft202012::options()
        .should_validate_formats(true)
        .build(&schema)
        .map_err(|e| anyhow!("the official schema does not compile: {e}"))?;
    Ok(Some(validator))
}

pub fn assert_valid(schema: &jsonschema::Validator, metadata: &Value) -> anyhow::Result<()> {
    let errors: Vec<String> =
        schema.iter_errors(metadata).map(|e| format!("at '{}': {e}", e.instance_path())).collect();
    anyhow::ensure!(errors.is_empty(), "metadata breaks schema 1.0.0:\n  {}\n{metadata}", errors.join("\n  "));
    Ok(())
}

/// Metadata shaped as the end-to-end test and the demo build it, with evidence-shaped members.
fn metadata() -> Value {
    let hash = json!({ "type": "sha512", "content": "ab".repeat(64) });
    json!({
        "contentStructure": {
            "data": { "hash": hash, "submissionSchema": { "schemaUri": "https://schema.example.org/bauantrag.json", "mimeType": "application/json" } },
            "attachments": [{ "hash": hash, "purpose": "attachment", "mimeType": "application/pdf",
                              "attachmentId": "1b4e28ba-2fa1-41d2-883f-0016d3cca427", "filename": "bauplan.pdf" }],
        },
        "publicServiceType": { "name": "Bauantrag", "identifier": "urn:de:fim:leika:leistung:99123456760610" },
        "authenticationInformation": [{ "type": "identificationReport", "version": "1.0.0", "content": "aGVhZGVy.cGF5bG9hZA.c2ln" }],
        "paymentInformation": { "transactionId": "9f2c1e0a-5b4d-4c3e-8a7f-6b5c4d3e2f1a", "transactionReference": "Bauantrag Gebuehr",
                                "transactionTimestamp": "2026-12-01T10:00:00Z", "paymentMethod": "GIROPAY", "status": "BOOKED",
                                "pforteEvidence": "aGVhZGVy.cGF5bG9hZA.c2ln" },
    })
}

/// The validator accepts what pforte's evidence looks like inside metadata and refuses what breaks
/// the schema: it can fail, or the end-to-end check proves nothing.
pub async fn the_official_schema_takes_evidence_shaped_metadata_and_refuses_broken_metadata(
    _ctx: TestContext,
) -> TestResult {
    let schema = official_schema()?.context("the schema is here (only_if)")?;
    assert_valid(&schema, &metadata()).context("the well-formed control")?;
    let breaks = |pointer: &str, value: Value| {
        let mut broken = metadata();
        *broken.pointer_mut(pointer).expect("member") = value;
        schema.is_valid(&broken)
    };
    assert!(!breaks("/paymentInformation/status", json!("PAYED")), "pforte's own word for paid is not the schema's");
    assert!(!breaks("/paymentInformation/transactionId", json!("T 1")), "a space in the transaction id");
    assert!(!breaks("/authenticationInformation/0/type", json!("idToken")), "another kind of evidence");
    assert!(!breaks("/authenticationInformation/0/content", json!("a b")), "evidence that is not base64url");
    assert!(!breaks("/contentStructure/data/hash/content", json!("ab".repeat(63))), "a short hash");
    let mut without = metadata();
    without.as_object_mut().context("object")?.remove("contentStructure");
    assert!(!schema.is_valid(&without), "contentStructure is required");
    Ok(())
}
sqlite_test!(
    the_official_schema_takes_evidence_shaped_metadata_and_refuses_broken_metadata,
    only_if = official_schema_present
);
