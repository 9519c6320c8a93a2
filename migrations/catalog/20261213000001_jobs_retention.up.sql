-- The retention purge finds finished jobs by status and by when they finished (their last update),
-- without reading the jobs still in flight. Not a partial index: the purge names the final
-- statuses as a parameter (the domain's list), which a partial index's predicate cannot match.
CREATE INDEX jobs_status_updated ON jobs (status, updated_at);
