DROP INDEX jobs_status_updated;
