-- Wrong two-factor codes are now throttled by billing/throttle.py's shared counters (growing delays per login
-- and per client address, as for passwords), not by a lockout kept on the two_factor row.
ALTER TABLE two_factor DROP COLUMN failures;
ALTER TABLE two_factor DROP COLUMN first_failure_at;
ALTER TABLE two_factor DROP COLUMN locked_until;
