-- Convenience fees the ISP may pass on (billing/fees.py), off by default: a percentage in basis points
-- (hundredths of a percent) and/or a fixed amount in cents, for cards and separately for ACH.
ALTER TABLE isp ADD COLUMN card_fee_bp INTEGER NOT NULL DEFAULT 0;
ALTER TABLE isp ADD COLUMN card_fee_fixed_cents BIGINT NOT NULL DEFAULT 0;
ALTER TABLE isp ADD COLUMN ach_fee_bp INTEGER NOT NULL DEFAULT 0;
ALTER TABLE isp ADD COLUMN ach_fee_fixed_cents BIGINT NOT NULL DEFAULT 0;
-- The fee charged with a payment, on top of amount_cents. It is never allocated to an invoice and never
-- becomes credit: amount_cents alone goes to the ledger; the processor is charged amount_cents + fee_cents.
ALTER TABLE payment ADD COLUMN fee_cents BIGINT NOT NULL DEFAULT 0;
