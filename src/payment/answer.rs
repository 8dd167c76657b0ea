//! What the payment API's creates answer, and how an answer is kept under an `Idempotency-Key`.
//! The domain returns typed results ([`Created`], [`PaymentError`]); the edge renders them. A create
//! stores the rendered answer with what it created (SECURITY.md #17, #33), so the domain asks the
//! edge's [`AnswerRenderer`] for it, and a replay returns that stored answer untouched: keys stored
//! by any earlier version replay exactly as they were first answered.

use serde_json::Value;

use super::code::PaymentError;

/// What a create came to: the created resource as the API shows it, or why nothing was created.
pub type Created = Result<Value, PaymentError>;

/// An answer as the edge rendered it (status and body text), stored under an Idempotency-Key and
/// sent again as is. The domain never reads it; `status` is the edge's choice, kept opaque here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredAnswer {
    pub status: u16,
    pub body: String,
}

/// How the edge renders a create's outcome; `app` hands the HTTP edge's renderer to the services.
pub trait AnswerRenderer: Send + Sync {
    fn render_create(&self, outcome: &Created) -> StoredAnswer;
}

/// The answer to a create that may carry an `Idempotency-Key`.
#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    /// Answered by this request.
    Fresh(Created),
    /// The same request under the same key was answered before: that answer, exactly as stored.
    Replayed(StoredAnswer),
}

/// What the payment services need from the edge that serves them: where it routes payments and
/// pages, and how it renders a create's answer. `app` builds it from the HTTP edge.
#[derive(Clone)]
pub struct PaymentEdge {
    pub routes: std::sync::Arc<dyn super::routes::PaymentRoutes>,
    pub answers: std::sync::Arc<dyn AnswerRenderer>,
}
