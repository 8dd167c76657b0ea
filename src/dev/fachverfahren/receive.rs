//! Receiving one submission as a Fachverfahren does, over HTTP from pforte with the subscriber
//! client's own credentials: fetch it, download the attachments, decrypt metadata, data and
//! attachments, check the SHA-512 hashes of `contentStructure`, compare the authentication tags with
//! pforte's signed `submit-submission` event, and verify pforte's login and payment evidence with its
//! JWKS. Every outcome is recorded as a check the page shows; nothing here is logged.

use rust_decimal::Decimal;
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Map, Value};
use sha2::{Digest, Sha512};

use super::keys::SimKeys;
use super::verify::{text, PforteKeys};
use super::SimDestination;
use crate::dev::Context;

const EVENTS: &str = "https://schema.fitko.de/fit-connect/events/";
/// The fees the simulated authority expects per service (the demo's birth certificate).
const FEES: &[(&str, &str)] = &[("urn:de:fim:leika:leistung:99050012104000", "12.00")];

/// A submission as the simulator received it.
#[derive(Clone)]
pub(super) struct Received {
    pub submission_id: String,
    pub case_id: String,
    pub destination_id: String,
    pub received_at: i64,
    pub service: String,
    /// The decrypted application data, pretty-printed JSON (or as text).
    pub data: Option<String>,
    /// (filename, MIME type, bytes) of each decrypted attachment.
    pub attachments: Vec<(String, String, usize)>,
    /// What was checked: the label, and what was found or what is wrong.
    pub checks: Vec<(String, Result<String, String>)>,
    /// From the verified login evidence: level, provider; from the payment evidence: the amount.
    pub level: Option<String>,
    pub provider: Option<String>,
    pub amount: Option<String>,
    /// The decision the simulator posted and pforte's answer.
    pub decision: Option<Result<&'static str, String>>,
    /// Whether fetching and decrypting worked; a failed attempt is tried again on the next poll.
    pub fetched: bool,
}

impl Received {
    fn check(&mut self, label: &str, outcome: Result<String, String>) {
        self.checks.push((label.to_owned(), outcome));
    }

    pub(super) fn all_passed(&self) -> bool {
        self.fetched && self.checks.iter().all(|(_, outcome)| outcome.is_ok())
    }
}

/// pforte's Submission API as the subscriber calls it.
pub(super) struct Subscriber<'a> {
    context: &'a Context,
    token: String,
}

impl<'a> Subscriber<'a> {
    pub(super) async fn connect(context: &'a Context, client: &str, secret: &SecretString) -> Result<Self, String> {
        let response = context
            .http
            .post(format!("{}/token", context.issuer))
            .basic_auth(client, Some(secret.expose_secret()))
            .form(&[("grant_type", "client_credentials"), ("scope", "transfer")])
            .send()
            .await
            .map_err(|_| "pforte ist nicht erreichbar".to_owned())?;
        if !response.status().is_success() {
            return Err(format!("kein Zugangstoken (HTTP {})", response.status().as_u16()));
        }
        let body: Value = response.json().await.map_err(|_| "die Token-Antwort ist kein JSON".to_owned())?;
        let token = body["access_token"].as_str().ok_or("die Token-Antwort enthält kein access_token")?;
        Ok(Subscriber { context, token: token.to_owned() })
    }

    async fn get(&self, path: &str) -> Result<reqwest::Response, String> {
        let url = format!("{}{path}", self.context.issuer);
        let response = self.context.http.get(url).bearer_auth(&self.token).send().await;
        let response = response.map_err(|_| "pforte ist nicht erreichbar".to_owned())?;
        match response.status().as_u16() {
            200 => Ok(response),
            status => Err(format!("GET {path}: HTTP {status}")),
        }
    }

    pub(super) async fn json(&self, path: &str) -> Result<Value, String> {
        self.get(path).await?.json().await.map_err(|_| format!("GET {path}: kein JSON"))
    }

    async fn text(&self, path: &str) -> Result<String, String> {
        self.get(path).await?.text().await.map_err(|_| format!("GET {path}: abgebrochen"))
    }

    /// Posts the simulator's SET; `Err` holds pforte's problem code.
    pub(super) async fn post_event(&self, case_id: &str, set: String) -> Result<(), String> {
        let url = format!("{}/v1/cases/{case_id}/events", self.context.issuer);
        let request = self.context.http.post(url).bearer_auth(&self.token).header("content-type", "application/jose");
        let response = request.body(set).send().await.map_err(|_| "pforte ist nicht erreichbar".to_owned())?;
        let status = response.status().as_u16();
        if status == 204 {
            return Ok(());
        }
        let body: Value = response.json().await.unwrap_or_default();
        Err(format!("HTTP {status} {}", body["code"].as_str().unwrap_or_default()))
    }
}

/// Fetches, decrypts and checks `submission_id` of `destination`.
pub(super) async fn receive(
    keys: &SimKeys,
    context: &Context,
    destination: &SimDestination,
    submission_id: &str,
) -> Received {
    let mut received = Received {
        submission_id: submission_id.to_owned(),
        case_id: String::new(),
        destination_id: destination.id.clone(),
        received_at: context.now(),
        service: String::new(),
        data: None,
        attachments: Vec::new(),
        checks: Vec::new(),
        level: None,
        provider: None,
        amount: None,
        decision: None,
        fetched: false,
    };
    match fetch(keys, context, destination, &mut received).await {
        Ok(()) => received.fetched = true,
        Err(problem) => received.check("Abruf und Entschlüsselung", Err(problem)),
    }
    received
}

async fn fetch(
    keys: &SimKeys,
    context: &Context,
    destination: &SimDestination,
    received: &mut Received,
) -> Result<(), String> {
    let pforte = Subscriber::connect(context, &destination.client, &destination.secret).await?;
    let submission = pforte.json(&format!("/v1/submissions/{}", received.submission_id)).await?;
    received.case_id = submission["caseId"].as_str().unwrap_or_default().to_owned();
    received.service = submission["serviceType"]["identifier"].as_str().unwrap_or_default().to_owned();
    let encrypted_metadata = submission["encryptedMetadata"].as_str().ok_or("keine encryptedMetadata")?;
    let (metadata, _) = keys.decrypt(encrypted_metadata, &destination.kids)?;
    let metadata: Value = serde_json::from_slice(&metadata).map_err(|_| "die Metadaten sind kein JSON")?;
    received.check("Metadaten entschlüsselt", Ok("RSA-OAEP-256, A256GCM".into()));
    let structure = &metadata["contentStructure"];

    let mut tags = Map::new();
    tags.insert("metadata".into(), Value::from(tag_of(encrypted_metadata)));
    if let Some(encrypted) = submission["encryptedData"].as_str() {
        tags.insert("data".into(), Value::from(tag_of(encrypted)));
        let (data, _) = keys.decrypt(encrypted, &destination.kids)?;
        let hash = hash_check(&data, &structure["data"]["hash"]);
        received.check("Fachdaten: SHA-512 wie in contentStructure", hash);
        received.data = Some(match serde_json::from_slice::<Value>(&data) {
            Ok(json) => serde_json::to_string_pretty(&json).unwrap_or_default(),
            Err(_) => String::from_utf8_lossy(&data).into_owned(),
        });
    }
    let mut attachment_tags = Map::new();
    let ids: Vec<&str> = submission["attachments"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
    for id in &ids {
        let path = format!("/v1/submissions/{}/attachments/{id}", received.submission_id);
        let encrypted = pforte.text(&path).await?;
        attachment_tags.insert((*id).to_owned(), Value::from(tag_of(&encrypted)));
        let (plain, cty) = keys.decrypt(&encrypted, &destination.kids)?;
        let described = structure["attachments"].as_array().into_iter().flatten().find(|a| a["attachmentId"] == *id);
        let described = described.cloned().unwrap_or_default();
        let label = format!("Anlage {}: SHA-512 wie in contentStructure", text_of(&described, "filename", id));
        received.check(&label, hash_check(&plain, &described["hash"]));
        received.attachments.push((text_of(&described, "filename", id), cty, plain.len()));
    }
    let described = structure["attachments"].as_array().map_or(0, Vec::len);
    let counted = if described == ids.len() {
        Ok(format!("{described} angekündigt, {described} erhalten"))
    } else {
        Err(format!("contentStructure nennt {described} Anlagen, pforte liefert {}", ids.len()))
    };
    received.check("Anlagen vollständig", counted);
    tags.insert("attachments".into(), Value::Object(attachment_tags));

    let jwks = pforte.json("/.well-known/jwks.json").await?;
    let pforte_keys = PforteKeys::new(&jwks);
    let log = pforte.json(&format!("/v1/cases/{}/events", received.case_id)).await?;
    received.check("Authentication-Tags wie im submit-submission-Ereignis", compare_tags(&pforte_keys, &log, &tags));
    evidence(&pforte_keys, &context.issuer, destination, &metadata, received);
    Ok(())
}

/// The fifth part of a compact JWE: its authentication tag.
fn tag_of(compact: &str) -> &str {
    compact.rsplit('.').next().unwrap_or_default()
}

fn text_of(value: &Value, name: &str, default: &str) -> String {
    value[name].as_str().unwrap_or(default).to_owned()
}

/// The plaintext's SHA-512 against metadata's `{type: "sha512", content: <hex>}`.
fn hash_check(plain: &[u8], hash: &Value) -> Result<String, String> {
    if hash["type"] != "sha512" {
        return Err("kein SHA-512-Hash in den Metadaten".into());
    }
    let actual = hex::encode(Sha512::digest(plain));
    if hash["content"].as_str().is_some_and(|given| given.eq_ignore_ascii_case(&actual)) {
        Ok(format!("{}…", &actual[..16]))
    } else {
        Err("der Hash stimmt nicht".into())
    }
}

/// The tags pforte recorded at submit (in its signed SET) against those of what was downloaded.
fn compare_tags(keys: &PforteKeys, log: &Value, downloaded: &Map<String, Value>) -> Result<String, String> {
    let submit = format!("{EVENTS}submit-submission");
    let tokens = log["eventLog"].as_array().into_iter().flatten().filter_map(Value::as_str);
    for token in tokens {
        let Ok(claims) = keys.verify(token, "secevent+jwt") else { continue };
        if let Some(event) = claims.get("events").and_then(|events| events.get(&submit)) {
            return if event["authenticationTags"].as_object() == Some(downloaded) {
                Ok("gleich (Ereignis von pforte signiert)".into())
            } else {
                Err("die Tags unterscheiden sich".into())
            };
        }
    }
    Err("kein gültig signiertes submit-submission-Ereignis".into())
}

/// Checks pforte's login and payment evidence in the metadata (contract: "How a Fachverfahren
/// verifies"): signature with pforte's JWKS, `iss`, this submission, this destination's tenant, and
/// for the payment PAYED and the fee this service costs.
fn evidence(keys: &PforteKeys, issuer: &str, destination: &SimDestination, metadata: &Value, received: &mut Received) {
    let submission_id = received.submission_id.clone();
    let ours = |claims: &Map<String, Value>| -> Result<(), String> {
        if text(claims, "iss") != issuer {
            return Err("iss ist nicht pforte".into());
        }
        if text(claims, "submission_id") != submission_id {
            return Err("gilt für eine andere Einreichung".into());
        }
        if text(claims, "tenant") != destination.tenant {
            return Err("gilt für eine andere Behörde".into());
        }
        Ok(())
    };
    let report = metadata["authenticationInformation"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|info| info["type"] == "identificationReport")
        .and_then(|info| info["content"].as_str());
    let login = report.ok_or_else(|| "fehlt".to_owned()).and_then(|token| {
        let claims = keys.verify(token, "identification-report+jwt")?;
        ours(&claims)?;
        Ok((text(&claims, "acr").to_owned(), text(&claims, "idp").to_owned()))
    });
    let login = login.map(|(level, provider)| {
        let shown = format!("Niveau {level} über {provider}");
        (received.level, received.provider) = (Some(level), Some(provider));
        shown
    });
    received.check("Anmeldenachweis von pforte", login);
    let fee = FEES.iter().find(|(service, _)| *service == received.service).map(|(_, fee)| *fee);
    let payment = &metadata["paymentInformation"];
    let paid = match (payment["pforteEvidence"].as_str(), fee) {
        (None, None) => Ok((None, "keine Gebühr für diese Leistung".to_owned())),
        (None, Some(_)) => Err("fehlt".to_owned()),
        (Some(token), fee) => keys.verify(token, "payment-evidence+jwt").and_then(|claims| {
            ours(&claims)?;
            if text(&claims, "status") != "PAYED" || text(&claims, "currency") != "EUR" {
                return Err("nicht als bezahlt (EUR) bestätigt".into());
            }
            if text(&claims, "transaction_id") != payment["transactionId"].as_str().unwrap_or_default() {
                return Err("nennt eine andere Transaktion als paymentInformation".into());
            }
            let amount: Decimal = text(&claims, "amount").parse().map_err(|_| "kein Betrag".to_owned())?;
            let expected: Option<Decimal> = fee.and_then(|fee| fee.parse().ok());
            if expected.is_some_and(|expected| expected != amount) {
                return Err(format!("{amount} EUR bezahlt, erwartet {}", fee.unwrap_or_default()));
            }
            Ok((Some(amount), format!("{amount} EUR, Transaktion {}", text(&claims, "transaction_id"))))
        }),
    };
    let paid = paid.map(|(amount, shown)| {
        received.amount = amount.map(|amount| amount.to_string());
        shown
    });
    received.check("Zahlungsnachweis von pforte", paid);
}
