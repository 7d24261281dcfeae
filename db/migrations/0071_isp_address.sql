-- The ISP's postal address, printed with its name, logo and support details on every invoice,
-- statement and receipt (page, print and PDF). Edited on the staff Settings page.
ALTER TABLE isp ADD COLUMN address TEXT NOT NULL DEFAULT '';
