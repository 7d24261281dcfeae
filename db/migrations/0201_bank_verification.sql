-- A payment can wait for its bank account to be verified (microdeposits) before the debit is made: it is in
-- the state awaiting_verification (billing/payments.py), keeps the processor's verification page, what the
-- customer types there (the deposits' amounts or a descriptor code), and when the processor stops accepting it.
ALTER TABLE payment ADD COLUMN verify_url VARCHAR(2048) NOT NULL DEFAULT '';
ALTER TABLE payment ADD COLUMN verify_type VARCHAR(255) NOT NULL DEFAULT '';
ALTER TABLE payment ADD COLUMN verify_expires_at TIMESTAMP NULL;
-- The sandbox's own verification step: what it sent, and until when it may be verified.
ALTER TABLE sandbox_intent ADD COLUMN microdeposit_type VARCHAR(255) NOT NULL DEFAULT '';
ALTER TABLE sandbox_intent ADD COLUMN verify_expires_at TIMESTAMP NULL;
