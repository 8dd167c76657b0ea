-- Datentransfer: the sender's own FIT-Connect callback (issue 15 item 4), given in the announcement.
-- Per submission: the URL, and the secret sealed under the master key for this submission alone
-- (JWE dir/A256GCM, `transfer::sender_callback`); never stored or logged in plain (SECURITY.md #43).
ALTER TABLE transfer_submissions ADD COLUMN sender_callback_url TEXT;
ALTER TABLE transfer_submissions ADD COLUMN sender_callback_secret TEXT;
-- A callback message to a submission's sender (`new-events`) names the submission whose callback it
-- goes to; NULL: a message to the destination's Fachverfahren (`new-submissions`), as before.
ALTER TABLE transfer_callbacks ADD COLUMN submission_id TEXT;
