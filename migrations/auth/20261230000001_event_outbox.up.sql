-- Events auth announces (account.deleted), written in the same transaction as the change; the
-- relay of libs/jobs (`Outbox::Events`) publishes each to `{ns}.events.<kind>` with
-- Nats-Msg-Id = id and sets published_at (DESIGN §6).
CREATE TABLE event_outbox (
    id           uuid PRIMARY KEY,
    kind         text NOT NULL CHECK (kind ~ '^[a-z_]+(\.[a-z_]+)+$'),
    payload      jsonb NOT NULL,
    request_id   text,
    traceparent  text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX event_outbox_unpublished ON event_outbox (created_at) WHERE published_at IS NULL;
CREATE INDEX event_outbox_published ON event_outbox (published_at) WHERE published_at IS NOT NULL;

CREATE FUNCTION event_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('outbox', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER event_outbox_notify AFTER INSERT ON event_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION event_outbox_notify();
