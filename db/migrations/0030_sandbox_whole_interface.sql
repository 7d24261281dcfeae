-- The sandbox processor implements the whole processor interface: setup intents told apart by a
-- column (not by an id prefix), the next action an intent waits for (a 3-D Secure challenge or a
-- bank's microdeposit check), refunds and disputes.
ALTER TABLE sandbox_intent ADD COLUMN kind VARCHAR(255) NOT NULL DEFAULT 'payment';
UPDATE sandbox_intent SET kind = 'setup' WHERE SUBSTR(id, 1, 5) = 'seti_';
ALTER TABLE sandbox_intent ADD COLUMN next_action VARCHAR(255) NOT NULL DEFAULT '';
UPDATE sandbox_intent SET next_action = 'challenge' WHERE status = 'requires_action';
ALTER TABLE sandbox_intent ADD COLUMN verify_attempts INTEGER NOT NULL DEFAULT 0;
CREATE TABLE sandbox_refund (
    id VARCHAR(255) NOT NULL PRIMARY KEY,
    intent_id VARCHAR(255) NOT NULL REFERENCES sandbox_intent (id),
    idempotency_key VARCHAR(255) NOT NULL UNIQUE,
    amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),
    status VARCHAR(255) NOT NULL,
    created_at TIMESTAMP NOT NULL
);
CREATE INDEX sandbox_refund_intent ON sandbox_refund (intent_id);
CREATE TABLE sandbox_dispute (
    id VARCHAR(255) NOT NULL PRIMARY KEY,
    intent_id VARCHAR(255) NOT NULL REFERENCES sandbox_intent (id),
    amount_cents BIGINT NOT NULL CHECK (amount_cents > 0),
    status VARCHAR(255) NOT NULL,
    reason VARCHAR(255) NOT NULL DEFAULT '',
    created_at TIMESTAMP NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
CREATE INDEX sandbox_dispute_intent ON sandbox_dispute (intent_id);
