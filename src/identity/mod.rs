//! Login: pforte as OpenID Provider towards online services, and as relying party towards the
//! upstream account providers. This module knows nothing of HTTP; `http::oidc` adapts it.

pub mod client_auth;
pub mod grants;
pub mod levels;
pub mod login;
pub mod oauth;
pub mod request;
pub mod tokens;
pub mod upstream;
