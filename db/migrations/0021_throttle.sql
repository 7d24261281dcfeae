-- Counters of password guesses and public-form requests, per account and per client address, shared by
-- every worker and host (billing/throttle.py). A key is a kind and a SHA-256 prefix, never a raw email.
CREATE TABLE throttle (
    id {pk},
    key VARCHAR(255) NOT NULL UNIQUE,
    failures INTEGER NOT NULL DEFAULT 0,
    last_failure_at TIMESTAMP NOT NULL,
    blocked_until TIMESTAMP NOT NULL
);
