-- Payments staff record at the counter: cash, check or money order (issue 15).
-- The money itself is an ordinary payment row (processor 'offline', origin 'counter') that goes through
-- the same ledger; this row keeps what the clerk wrote down. UNIQUE payment: one record per payment.
CREATE TABLE offline_payment (
    id {pk},
    payment_id INTEGER NOT NULL UNIQUE REFERENCES payment (id) ON DELETE RESTRICT,
    kind VARCHAR(16) NOT NULL,
    check_number VARCHAR(64) NOT NULL DEFAULT '',
    received_on DATE NOT NULL,
    note VARCHAR(500) NOT NULL DEFAULT '',
    recorded_by VARCHAR(255) NOT NULL,
    created_at TIMESTAMP NOT NULL
);
