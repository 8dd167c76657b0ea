-- Datentransfer login and payment evidence (issue 15 item 5): the payment a submission was announced
-- with (pforte's `paymentTransactionId` extension), or bound to when its payment evidence was issued.
-- The unique index makes "one payment, one submission" hold under racing announces on both backends:
-- the second insert fails instead of both winning. NULLs do not collide.
ALTER TABLE transfer_submissions ADD COLUMN payment_transaction_id TEXT;
CREATE UNIQUE INDEX transfer_submissions_payment ON transfer_submissions (payment_transaction_id);
