-- Jobs: the transactional outbox and the job status that GET /v1/jobs/{id} shows.
-- A job row is written in the same transaction as the change that causes it; the relay publishes
-- it to JetStream (Nats-Msg-Id = id) and sets published_at. Status changes arrive as events.

CREATE TABLE jobs (
    id           uuid PRIMARY KEY,
    kind         text NOT NULL CHECK (kind ~ '^[a-z_]+(\.[a-z_]+)+$'),
    payload      jsonb NOT NULL,
    status       text NOT NULL DEFAULT 'queued'
                 CHECK (status IN ('queued', 'running', 'succeeded', 'failed', 'dead')),
    attempts     integer NOT NULL DEFAULT 0,
    error        text,
    -- Who caused the job (may read its status), and the request that did.
    owner_id     uuid,
    request_id   text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
-- The relay's queue: unpublished jobs, oldest first.
CREATE INDEX jobs_unpublished ON jobs (created_at) WHERE published_at IS NULL;

-- Wake the relays as soon as a job is committed (they also poll, in case a notification is lost).
CREATE FUNCTION jobs_notify_outbox() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER jobs_outbox_notify AFTER INSERT ON jobs
    FOR EACH STATEMENT EXECUTE FUNCTION jobs_notify_outbox();
