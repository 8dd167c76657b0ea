//! What a payment create writes, in as few round trips as each database allows (issue 13): the
//! payment row with its sealed personal data, its first event, its audit event, and the API's answer
//! under the Idempotency-Key, all or nothing.
//!
//! PostgreSQL: one statement (data-modifying CTEs) run on its own, so the statement is the
//! transaction: one round trip instead of seven (BEGIN, four inserts, an update, COMMIT).
//! SQLite: four statements inside the group commit's shared transaction (`group_commit`), where a
//! round trip is a call into the library and the cost that counts is the sync at commit.

use sqlx::AnyConnection;

use super::audit_log::PendingAuditRow;
use super::payments::{self, PaymentEventRow, PaymentRow, COLUMNS};
use super::{Database, StorageError, StorageResult};
use crate::config::Backend;

/// The answer stored under a claimed Idempotency-Key with the payment it created.
#[derive(Debug, Clone)]
pub struct AnswerRow {
    pub client_id: String,
    pub key: String,
    pub status: u16,
    /// Sealed for the client and key (`payment::idempotency`).
    pub body: String,
}

/// Everything one create writes.
#[derive(Debug, Clone)]
pub struct CreatedPayment {
    pub row: PaymentRow,
    /// Sealed under the master key (`payment::personal`); `None` when the payment carries none.
    pub personal_data: Option<String>,
    pub first_event: PaymentEventRow,
    pub audit: PendingAuditRow,
    pub answer: Option<AnswerRow>,
}

impl Database {
    /// Stores a created payment with everything that belongs to it, in one transaction. A second
    /// payment with the same (originator, endpoint, requestId) fails with a unique violation
    /// (`StorageError::is_unique_violation`) and writes nothing.
    pub async fn insert_created_payment(&self, created: CreatedPayment) -> StorageResult<()> {
        match self.backend() {
            Backend::Postgres => insert_in_one_statement(self, &created).await,
            Backend::Sqlite => {
                self.write_grouped(Box::new(move |conn| Box::pin(async move { insert_in(conn, &created).await }))).await
            }
        }
    }
}

/// PostgreSQL: the payment first; every other row is selected from its `RETURNING`, so nothing is
/// written when it is refused, and the statement commits as a whole.
async fn insert_in_one_statement(db: &Database, created: &CreatedPayment) -> StorageResult<()> {
    let sql = format!(
        "WITH payment AS (\
           INSERT INTO payments ({COLUMNS}, personal_data) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
             $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24) RETURNING transaction_id), \
         first_event AS (\
           INSERT INTO payment_events (transaction_id, from_status, to_status, source, detail, recorded_at) \
           SELECT transaction_id, $25, $26, $27, $28, $29 FROM payment), \
         audit AS (\
           INSERT INTO audit_pending (recorded_at, event, actor, subject, details) \
           SELECT $30, $31, $32, $33, $34 FROM payment), \
         answer AS (\
           UPDATE idempotency_keys SET response_status = $35, response_body = $36 \
           WHERE client_id = $37 AND idempotency_key = $38 AND EXISTS (SELECT 1 FROM payment)) \
         SELECT COUNT(*) FROM payment"
    );
    let (event, audit) = (&created.first_event, &created.audit);
    let answer = created.answer.as_ref();
    let query = payments::bind_row(sqlx::query(&sql), &created.row)
        .bind(&created.personal_data)
        .bind(event.from_status.as_str())
        .bind(event.to_status.as_str())
        .bind(&event.source)
        .bind(&event.detail)
        .bind(event.recorded_at)
        .bind(audit.recorded_at)
        .bind(&audit.event)
        .bind(&audit.actor)
        .bind(&audit.subject)
        .bind(&audit.details)
        .bind(answer.map(|a| i64::from(a.status)))
        .bind(answer.map(|a| a.body.as_str()))
        .bind(answer.map(|a| a.client_id.as_str()))
        .bind(answer.map(|a| a.key.as_str()));
    query.execute(db.writer()).await?;
    Ok(())
}

/// SQLite: the same rows, statement by statement, inside the caller's transaction.
async fn insert_in(conn: &mut AnyConnection, created: &CreatedPayment) -> Result<(), StorageError> {
    payments::insert_with_personal_data(conn, &created.row, created.personal_data.as_deref()).await?;
    payments::insert_event(conn, &created.row.transaction_id, &created.first_event).await?;
    let audit = &created.audit;
    super::audit_log::insert_pending(
        conn,
        audit.recorded_at,
        &audit.event,
        &audit.actor,
        &audit.subject,
        &audit.details,
    )
    .await?;
    if let Some(answer) = &created.answer {
        super::idempotency::store_response_in(conn, &answer.client_id, &answer.key, answer.status, &answer.body)
            .await?;
    }
    Ok(())
}
