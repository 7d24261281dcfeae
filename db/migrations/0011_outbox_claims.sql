-- Each email is claimed before it is sent, so overlapping send-mail runs (or two hosts) send it once;
-- a permanent refusal (SMTP 5xx) or a message that can never be built stops the retries.
-- status: queued | sending | sent | failed. reason: why it failed for good (or gave up).
ALTER TABLE outbox ADD COLUMN status VARCHAR(16) NOT NULL DEFAULT 'queued';
ALTER TABLE outbox ADD COLUMN claimed_by VARCHAR(64) NOT NULL DEFAULT '';
ALTER TABLE outbox ADD COLUMN claimed_until TIMESTAMP NULL;
ALTER TABLE outbox ADD COLUMN reason VARCHAR(255) NOT NULL DEFAULT '';
UPDATE outbox SET status = 'sent' WHERE sent_at IS NOT NULL;
CREATE INDEX outbox_status_next_attempt_at ON outbox (status, next_attempt_at);
