-- One row that /healthz rewrites: proof that the database can still be written (not read-only, not full).
CREATE TABLE health_check (
    id {pk},
    checked_at TIMESTAMP NOT NULL
);
