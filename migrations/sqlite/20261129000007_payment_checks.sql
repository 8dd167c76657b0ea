-- When the status worker next asks the provider about an open payment, and how often it has asked.
ALTER TABLE payments ADD COLUMN next_check_at BIGINT;
ALTER TABLE payments ADD COLUMN checks BIGINT NOT NULL DEFAULT 0;
CREATE INDEX payments_next_check ON payments (status, next_check_at);
