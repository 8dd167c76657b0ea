//! Where the payment domain's resources and pages are reachable, as the edge routes them. The
//! domain names these places in its answers (`transactionUrl`, the pay page), gives them to
//! providers (the return and callback URLs) and hashes a request's path under its
//! Idempotency-Key; the paths themselves are typed once, at the edge, which builds the value that
//! `app` hands to the services.

/// The routes of the payment API and the citizen's pages; URLs are absolute, paths are the
/// request paths of the API.
pub trait PaymentRoutes: Send + Sync {
    /// The request path of a create, for (originatorId, endPointId).
    fn create_path(&self, originator: &str, endpoint: &str) -> String;

    /// The request path of a refund of payment `transaction_id`.
    fn refunds_path(&self, originator: &str, endpoint: &str, transaction_id: &str) -> String;

    /// The payment as a resource (`transactionUrl`).
    fn transaction_url(&self, originator: &str, endpoint: &str, transaction_id: &str) -> String;

    /// pforte's pay page, which sends the citizen on to the provider (`transactionRedirectUrl`).
    fn pay_url(&self, transaction_id: &str) -> String;

    /// Where the provider sends the citizen back to pforte.
    fn provider_return_url(&self, transaction_id: &str) -> String;

    /// Where a provider instance sends its callbacks.
    fn provider_callback_url(&self, provider_id: &str) -> String;
}
