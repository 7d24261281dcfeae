-- The legal texts (billing/legal.py) are shown in the customer's language: each acceptance records the language
-- it was shown in beside its words. Autopay acceptances already carry their version; a bank-debit mandate now
-- does too ('' for those accepted before versions, whose words are kept as they were). Rows before this were
-- all shown in English.
ALTER TABLE autopay_authorization ADD COLUMN language VARCHAR(8) NOT NULL DEFAULT 'en';
ALTER TABLE payment_mandate ADD COLUMN text_version VARCHAR(255) NOT NULL DEFAULT '';
ALTER TABLE payment_mandate ADD COLUMN language VARCHAR(8) NOT NULL DEFAULT 'en';
