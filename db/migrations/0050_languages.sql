-- Languages (issue 14): the language a customer chose (NULL: none chosen yet, so the browser's is used),
-- the ISP's default for everyone else, and whether Spanish is offered at all.
ALTER TABLE customer ADD COLUMN language VARCHAR(8);
ALTER TABLE isp ADD COLUMN default_language VARCHAR(8) NOT NULL DEFAULT 'en';
ALTER TABLE isp ADD COLUMN offer_spanish BOOLEAN NOT NULL DEFAULT TRUE;
