-- Staff roles and staff logins managed from the staff pages (issue 15).
-- role stays 'staff' for every staff login; staff_role says which: 'owner' (settings, staff, API tokens,
-- refunds) or 'clerk' (customers, invoices, offline payments, invites). Every login made before roles
-- existed could do everything, so it becomes an owner.
ALTER TABLE "user" ADD COLUMN staff_role VARCHAR(16) NOT NULL DEFAULT '';
ALTER TABLE "user" ADD COLUMN name VARCHAR(255) NOT NULL DEFAULT '';
-- A disabled login cannot log in and has no sessions; used for staff and for customers' portal logins.
ALTER TABLE "user" ADD COLUMN disabled_at TIMESTAMP;
UPDATE "user" SET staff_role = 'owner' WHERE role = 'staff';
