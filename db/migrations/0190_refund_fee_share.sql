-- A refund returns the convenience fee in proportion (billing/fees.py fee_share). The fee part is kept apart
-- from amount_cents, which stays what comes off invoices and credit, so ledger and statements are unchanged;
-- the processor is refunded amount_cents + fee_cents.
ALTER TABLE payment_reversal ADD COLUMN fee_cents BIGINT NOT NULL DEFAULT 0;
ALTER TABLE refund_request ADD COLUMN fee_cents BIGINT NOT NULL DEFAULT 0;
