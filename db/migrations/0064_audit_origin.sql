-- Where an audited action came from (issue 15): the client's address for web requests ('' for cron and
-- the command line), so the staff audit log can say who, what, which record, when and from where.
ALTER TABLE audit_log ADD COLUMN ip VARCHAR(64) NOT NULL DEFAULT '';
CREATE INDEX audit_log_at ON audit_log (at);
