DROP INDEX jobs_owner;
ALTER TABLE customers DROP COLUMN anonymised_at;
