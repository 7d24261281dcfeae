-- A short confirmation code per payment, read aloud to support and printed on every receipt
-- (billing/receipts.py). NULL until assigned: new payments get one when they are created, older ones
-- the first time their receipt is shown. UNIQUE, so support's look-up finds exactly one payment.
ALTER TABLE payment ADD COLUMN confirmation_code VARCHAR(16) NULL;
CREATE UNIQUE INDEX payment_confirmation_code ON payment (confirmation_code);
