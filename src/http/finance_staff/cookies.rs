//! The two cookies of finance staff in the browser and their attributes. Both hold an opaque random
//! value, never a token: the session cookie names a session (the database keeps its hash), the
//! sign-in cookie binds a sign-in in flight and the sign-in forms to this browser before there is a
//! session. HttpOnly; SameSite=Lax, because the identity provider's answer arrives as a cross-site
//! top-level navigation that must carry the sign-in cookie; Secure when the public URL is https;
//! scoped to the paths that read them.

use axum::http::HeaderValue;

/// Names a finance session; sent to everything under `/finance`.
pub(super) const SESSION_COOKIE: &str = "pforte-finance-session";
pub(super) const SESSION_PATH: &str = "/finance";
/// Binds the sign-in forms and a sign-in in flight to this browser; sent to `/finance/login…` only.
pub(super) const SIGN_IN_COOKIE: &str = "pforte-finance-signin";
pub(super) const SIGN_IN_PATH: &str = "/finance/login";
/// Long enough to fill in the form and come back from the identity provider.
const SIGN_IN_MAX_AGE_SECS: u64 = 3600;

/// Cookies are read the one way every page reads them.
pub(super) use crate::http::cookies::read;

/// `Set-Cookie` for the session: lives at most as long as the session may.
pub(super) fn session(value: &str, max_age_secs: u64, secure: bool) -> Option<HeaderValue> {
    set(SESSION_COOKIE, value, SESSION_PATH, max_age_secs, secure)
}

pub(super) fn sign_in(value: &str, secure: bool) -> Option<HeaderValue> {
    set(SIGN_IN_COOKIE, value, SIGN_IN_PATH, SIGN_IN_MAX_AGE_SECS, secure)
}

/// `Set-Cookie` that makes the browser forget cookie `name` at `path`.
pub(super) fn cleared(name: &str, path: &str, secure: bool) -> Option<HeaderValue> {
    set(name, "", path, 0, secure)
}

fn set(name: &str, value: &str, path: &str, max_age_secs: u64, secure: bool) -> Option<HeaderValue> {
    let secure = if secure { "; Secure" } else { "" };
    HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; Max-Age={max_age_secs}; HttpOnly; SameSite=Lax{secure}"
    ))
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_session_cookie_is_http_only_lax_path_scoped_and_secure_only_on_https() {
        let plain = session("abc", 60, false).and_then(|v| v.to_str().ok().map(str::to_owned)).unwrap_or_default();
        assert_eq!(plain, "pforte-finance-session=abc; Path=/finance; Max-Age=60; HttpOnly; SameSite=Lax");
        let secure = session("abc", 60, true).and_then(|v| v.to_str().ok().map(str::to_owned)).unwrap_or_default();
        assert!(secure.ends_with("; Secure"), "{secure}");
    }

    #[test]
    fn a_cookie_is_found_among_others_and_an_empty_one_is_none() {
        use axum::http::{header, HeaderMap};
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("a=1; pforte-finance-session=xyz; b="));
        assert_eq!(read(&headers, SESSION_COOKIE), Some("xyz"));
        assert_eq!(read(&headers, "b"), None);
        assert_eq!(read(&headers, SIGN_IN_COOKIE), None);
    }
}
