-- Each invoice keeps the sum of its allocations in paid_cents, written only by Allocation.record in the same
-- transaction as the allocation row (allocations stay append-only; the column is their running total). Home,
-- the Invoices tab and the open-invoice queries then read one row per invoice instead of summing its whole
-- payment history, and the open invoices have an index of their own: the summary's work follows what is owed,
-- not how long the customer has been billed (bench/growth.py).
ALTER TABLE invoice ADD COLUMN paid_cents BIGINT NOT NULL DEFAULT 0;
UPDATE invoice SET paid_cents = (SELECT COALESCE(SUM(a.amount_cents), 0) FROM allocation a WHERE a.invoice_id = invoice.id);
-- The customer's non-void invoices in due order (the Invoices tab, newest first; its count reads the index only).
DROP INDEX invoice_customer_id_due_date_number;
CREATE INDEX invoice_customer_void_due_date_number ON invoice (customer_id, void, due_date, number);
-- What is still owed, and only that: Home's figures and the ledger's open invoices, read from the index alone.
-- (Its leading columns match the index above, so that SQLite's planner, which weighs equality columns and
-- not a partial index's smaller size, still picks it for the open invoices.)
CREATE INDEX invoice_customer_open ON invoice (customer_id, void, due_date, total_cents, paid_cents)
  WHERE total_cents > paid_cents;
-- A statement: its window's invoices by issue date and money by the day it was received; and, read from the
-- index alone (it carries the summed columns), the opening balance's sums over everything before the window.
CREATE INDEX invoice_customer_issue_date ON invoice (customer_id, issue_date, void, total_cents);
CREATE INDEX payment_customer_status_settled_at ON payment (customer_id, status, settled_at, amount_cents);
