//! Login: pforte as OpenID Provider towards online services, and as relying party towards the
//! upstream account providers. This module knows nothing of HTTP; `http::oidc` adapts it.

pub(crate) mod client_auth;
pub(crate) mod grants;
pub(crate) mod levels;
pub(crate) mod login;
pub(crate) mod oauth;
pub(crate) mod redirects;
pub(crate) mod request;
pub mod saml_logout;
pub(crate) mod tokens;
pub mod upstream;
mod verified;
