-- When the portal last asked a remote processor (Stripe) about an unfinished payment: the payment page polls
-- our own row, and the processor is asked again only after a backoff that grows with the attempt's age
-- (billing.payments.sync), so open pages do not reach the processor's read limits.
ALTER TABLE payment ADD COLUMN checked_at TIMESTAMP NULL;
