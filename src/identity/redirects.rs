//! What a login answers at the online service's redirect URI: the code, or an OAuth error with the
//! request's `state` and pforte's `iss` (RFC 9207), added to the registered URI's query.

use url::Url;

use super::request::AuthorizationRequest;

/// The redirect URI with `pairs` added to its query.
pub(super) fn with_query(redirect_uri: &str, pairs: &[(&str, &str)]) -> String {
    match Url::parse(redirect_uri) {
        Ok(mut url) => {
            url.query_pairs_mut().extend_pairs(pairs);
            url.into()
        }
        // Not reached: the URI matched a registered, parsed URL. Still no panic on a request path.
        Err(_) => {
            let query = url::form_urlencoded::Serializer::new(String::new()).extend_pairs(pairs).finish();
            format!("{redirect_uri}?{query}")
        }
    }
}

/// An error response for the service: its redirect URI with `error`, `error_description`, `state`
/// and `iss` (RFC 9207).
pub(crate) fn client_error(request: &AuthorizationRequest, error: &str, description: &str, issuer: &str) -> String {
    error_redirect(&request.redirect_uri, request.state.as_deref(), error, description, issuer)
}

pub(crate) fn error_redirect(
    redirect_uri: &str,
    state: Option<&str>,
    error: &str,
    description: &str,
    issuer: &str,
) -> String {
    let mut pairs = vec![("error", error), ("error_description", description)];
    if let Some(state) = state {
        pairs.push(("state", state));
    }
    pairs.push(("iss", issuer));
    with_query(redirect_uri, &pairs)
}
