-- A bank account the bank says can no longer be debited (a dispute of one of its debits, or its mandate
-- turned inactive) is taken out of use like a removed method, with the reason kept beside it.
ALTER TABLE payment_method ADD COLUMN unusable_reason VARCHAR(255) NOT NULL DEFAULT '';
