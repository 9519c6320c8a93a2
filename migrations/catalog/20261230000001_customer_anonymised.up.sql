-- When the customer's account was deleted and their personal data scrubbed (account.deleted).
ALTER TABLE customers ADD COLUMN anonymised_at timestamptz;
-- The export and the anonymisation find a customer's jobs by owner.
CREATE INDEX jobs_owner ON jobs (owner_id) WHERE owner_id IS NOT NULL;
