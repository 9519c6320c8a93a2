-- Job status events already applied, so a redelivered event changes nothing.
CREATE TABLE job_event_inbox (
    event_id    uuid PRIMARY KEY,
    received_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX job_event_inbox_received ON job_event_inbox (received_at);
