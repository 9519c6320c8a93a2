DROP TRIGGER jobs_outbox_notify ON jobs;
DROP FUNCTION jobs_notify_outbox();
DROP TABLE jobs;
