DROP TABLE job_event_inbox;
