-- Account recovery and verification (docs/auth.md, "Verifying the address", "Forgotten and
-- changed passwords"). Expand only: the previous release reads users by named columns and never
-- touches the new tables, so it keeps working on this schema during a rolling upgrade.

-- NULL until the owner follows a verification link (or a reset link, which proves the same
-- mailbox). Accounts from before this release start unverified: their address was never proven.
ALTER TABLE users ADD COLUMN email_verified_at timestamptz;

-- Single-use tokens sent by e-mail, stored only as SHA-256 hashes (like refresh tokens).
-- `email` is the address the link was sent to: a token proves that mailbox, no other.
CREATE TABLE account_tokens (
    token_hash bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    user_id    uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    purpose    text NOT NULL CHECK (purpose IN ('verify_email', 'reset_password')),
    email      text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    expires_at timestamptz NOT NULL,
    used_at    timestamptz
);
-- A reset or a password change spends the user's outstanding reset tokens.
CREATE INDEX account_tokens_user ON account_tokens (user_id, purpose) WHERE used_at IS NULL;
-- The purge finds expired tokens.
CREATE INDEX account_tokens_expires_at ON account_tokens (expires_at);

-- Password-reset requests per normalised email, whether or not an account exists: every request
-- writes here, known address or not, so both cost the same statements (no enumeration by
-- timing), and one address gets a bounded number of reset e-mails per hour.
CREATE TABLE password_reset_requests (
    email        text PRIMARY KEY,
    requests     integer NOT NULL,
    window_start timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX password_reset_requests_window_start ON password_reset_requests (window_start);

-- Jobs auth asks for (e-mails to the account's owner), written in the transaction of the change
-- that causes them; the relay of libs/jobs (`Publishes::Jobs`, app::JOB_OUTBOX) publishes each to
-- `{ns}.jobs.<kind>` with Nats-Msg-Id = id and sets published_at.
CREATE TABLE job_outbox (
    id           uuid PRIMARY KEY,
    kind         text NOT NULL CHECK (kind ~ '^[a-z_]+(\.[a-z_]+)+$'),
    payload      jsonb NOT NULL,
    request_id   text,
    traceparent  text,
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX job_outbox_unpublished ON job_outbox (created_at) WHERE published_at IS NULL;
CREATE INDEX job_outbox_published ON job_outbox (published_at) WHERE published_at IS NOT NULL;

-- Its own channel: inserts here need not wake the event relay, nor the other way round.
CREATE FUNCTION job_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('job_outbox', '');
    RETURN NULL;
END
$$;
CREATE TRIGGER job_outbox_notify AFTER INSERT ON job_outbox
    FOR EACH STATEMENT EXECUTE FUNCTION job_outbox_notify();

-- A payload's `link` holds a live token. Once the job is in JetStream the database needs it no
-- more: the relay's "published" mark drops it, so the plain token lives here for about a second,
-- not for the outbox's retention.
CREATE FUNCTION job_outbox_forget_link() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.payload := NEW.payload - 'link';
    RETURN NEW;
END
$$;
CREATE TRIGGER job_outbox_forget_link BEFORE UPDATE OF published_at ON job_outbox
    FOR EACH ROW WHEN (OLD.published_at IS NULL AND NEW.published_at IS NOT NULL)
    EXECUTE FUNCTION job_outbox_forget_link();
