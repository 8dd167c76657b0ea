//! The development simulators: the protocol peers pforte talks to, run in the same process when
//! `dev.simulators` is on (which the configuration allows only on a loopback public URL), so a
//! developer can log in and pay without a contract with anyone. Each peer lives in its own folder and
//! speaks its protocol from the specification, with its own wire types, signatures and pages, so a bug
//! in pforte's side of a protocol shows up against it instead of being shared by both ends:
//!
//! - `accounts`: two OpenID Providers, a citizen account (BundID-style) under `/dev/bundid` and a
//!   company account (Mein Unternehmenskonto-style) under `/dev/unternehmenskonto`, with their personas,
//!   and the citizen and company accounts as SAML 2.0 identity providers under `/dev/bundid-saml` and
//!   `/dev/unternehmenskonto-saml`;
//! - `xbezahldienste`: XBezahldienste v1.0.0 payment providers under the base URL of each registry
//!   entry of kind `simulator` (e.g. `/dev/pay`, `/dev/pay-b`), with their pay pages;
//! - `pmpayment`: a pmPayment peer (legacy form protocol) under `/dev/pmpay`;
//! - `demo`: the demo online service under `/demo`, a relying party of pforte and a client of its
//!   payment and Datentransfer APIs, over real HTTP;
//! - `fachverfahren`: the demo authorities' Fachverfahren under `/dev/fachverfahren`, subscriber of
//!   the development destinations (`config/destinations`), with its own keys.
//!
//! From pforte they take only the configuration, the registry entries that name them, random tokens
//! (`crypto`) and the clock. They keep their own state (in memory; everything is forgotten with the
//! process) and hand `app` a router with that state applied.

mod accounts;
mod demo;
mod fachverfahren;
pub mod pmpayment;
pub mod xbezahldienste;

use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::Router;

use crate::clock::SharedClock;
use crate::config::Settings;
use crate::registry::Registry;

/// What every simulator needs to know about where it runs.
#[derive(Clone)]
pub(crate) struct Context {
    /// pforte's public URL without a trailing slash; the simulators are mounted under it.
    pub issuer: String,
    pub clock: SharedClock,
    /// The simulators' own client, for the demo service's calls to pforte and the pmPayment notify.
    pub http: reqwest::Client,
}

impl Context {
    pub(crate) fn now(&self) -> i64 {
        self.clock.now().timestamp()
    }
}

/// All simulators with their state; cheap to clone.
#[derive(Clone)]
pub struct Simulators {
    accounts: Arc<accounts::Accounts>,
    saml: Arc<accounts::saml::SamlIdp>,
    company_saml: Arc<accounts::saml::SamlIdp>,
    pay: Arc<xbezahldienste::PayProviders>,
    pmpayment: Arc<pmpayment::PmPaySimulator>,
    demo: Arc<demo::Demo>,
    fachverfahren: Arc<fachverfahren::Fachverfahren>,
    context: Context,
}

impl Simulators {
    /// Reads the registry entries that name the simulators and makes their keys.
    pub fn new(settings: &Settings, registry: &Registry, clock: SharedClock) -> anyhow::Result<Simulators> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(3))
            .timeout(Duration::from_secs(10))
            .user_agent(concat!("pforte-simulators/", env!("CARGO_PKG_VERSION")))
            .build()?;
        let context = Context { issuer: settings.issuer(), clock, http };
        Ok(Simulators {
            accounts: Arc::new(accounts::Accounts::new(registry, &context.issuer)?),
            saml: Arc::new(accounts::saml::SamlIdp::new(&accounts::saml::BUNDID, registry, &context.issuer)?),
            company_saml: Arc::new(accounts::saml::SamlIdp::new(
                &accounts::saml::UNTERNEHMENSKONTO,
                registry,
                &context.issuer,
            )?),
            pay: Arc::new(xbezahldienste::PayProviders::new(xbezahldienste::base_paths(registry, &context.issuer))),
            pmpayment: Arc::new(pmpayment::PmPaySimulator::default()),
            demo: Arc::new(demo::Demo::new(registry)),
            fachverfahren: Arc::new(fachverfahren::Fachverfahren::new(registry)?),
            context,
        })
    }

    /// Every simulator's routes, state applied.
    pub fn router(&self) -> Router {
        Router::new()
            .merge(accounts::router(self.accounts.clone(), self.context.clone()))
            .merge(accounts::saml::router(self.saml.clone(), self.context.clone()))
            .merge(accounts::saml::router(self.company_saml.clone(), self.context.clone()))
            .merge(xbezahldienste::router(self.pay.clone(), self.context.clone()))
            .nest(pmpayment::BASE_PATH, pmpayment::router(self.pmpayment.clone(), self.context.clone()))
            .merge(demo::router(self.demo.clone(), self.context.clone()))
            .merge(fachverfahren::router(self.fachverfahren.clone(), self.context.clone()))
    }

    /// The pmPayment peer, for tests that play its network failing (deciding without the notify).
    pub fn pmpayment(&self) -> &pmpayment::PmPaySimulator {
        &self.pmpayment
    }
}

/// The simulators' routes for `settings` and `registry`, state applied.
pub fn router(settings: &Settings, registry: &Registry, clock: SharedClock) -> anyhow::Result<Router> {
    Ok(Simulators::new(settings, registry, clock)?.router())
}

/// Text for HTML: markup and quotes neutralised.
pub(crate) fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A whole German page with pforte's stylesheet: `title` is plain text, `body` is HTML.
pub(crate) fn document(title: &str, body: &str) -> String {
    format!(
        r#"<!doctype html>
<html lang="de">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{title}</title>
<link rel="stylesheet" href="/assets/pforte.css">
</head>
<body>
<main>
{body}
</main>
</body>
</html>
"#,
        title = escape(title),
    )
}

/// An HTML page nobody may cache.
pub(crate) fn html(status: StatusCode, page: String) -> Response {
    (status, [(header::CACHE_CONTROL, "no-store")], Html(page)).into_response()
}

/// An HTML page nobody may cache whose form may also lead to `form_targets` (origins). Browsers
/// apply `form-action` to every redirect after a submission, and a simulator's answer leads on to
/// the online service, which may live on another origin. pforte's default policy otherwise, written
/// here because the simulators do not use pforte's HTTP layer.
pub(crate) fn html_leading_to(status: StatusCode, page: String, form_targets: &[String]) -> Response {
    let mut response = html(status, page);
    if form_targets.is_empty() {
        return response;
    }
    let policy = format!(
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self' {}; frame-ancestors 'none'; \
         base-uri 'none'",
        form_targets.join(" ")
    );
    if let Ok(value) = HeaderValue::from_str(&policy) {
        response.headers_mut().insert(header::CONTENT_SECURITY_POLICY, value);
    }
    response
}

/// The origin of `url` when it is another than pforte's (`issuer`), for a page's `form-action`.
pub(crate) fn foreign_origin(url: &str, issuer: &str) -> Option<String> {
    let origin = url::Url::parse(url).ok()?.origin();
    let own = url::Url::parse(issuer).ok()?.origin();
    (origin.is_tuple() && origin != own).then(|| origin.ascii_serialization())
}

/// `303 See Other` to `location`, not cached.
pub(crate) fn see_other(location: &str) -> Response {
    match HeaderValue::from_str(location) {
        Ok(value) => (
            StatusCode::SEE_OTHER,
            [(header::LOCATION, value), (header::CACHE_CONTROL, HeaderValue::from_static("no-store"))],
        )
            .into_response(),
        Err(_) => {
            (StatusCode::INTERNAL_SERVER_ERROR, "the redirect target is not a valid header value").into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_quotes_are_neutralised() {
        assert_eq!(escape(r#"<a href="x">'&'</a>"#), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
        let page = document("<Titel>", "<p>ok</p>");
        assert!(page.contains("<html lang=\"de\">") && page.contains("&lt;Titel&gt;") && page.contains("<p>ok</p>"));
    }
}
