-- Accounts, sessions and refresh tokens of the auth service.

CREATE TABLE users (
    id            uuid PRIMARY KEY,
    -- Normalised (trimmed, lower-cased) by the service; unique as stored.
    email         text NOT NULL UNIQUE CHECK (email = lower(btrim(email))),
    password_hash text NOT NULL,
    role          text NOT NULL DEFAULT 'customer' CHECK (role IN ('customer', 'admin')),
    disabled      boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);
-- Admin listing pages through users by (created_at, id).
CREATE INDEX users_created_at_id ON users (created_at, id);

-- A session is one login: every refresh token it rotates through belongs to it, and every access
-- token carries its id (`sid`), so revoking the session revokes them all.
CREATE TABLE sessions (
    id             uuid PRIMARY KEY,
    user_id        uuid NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at     timestamptz NOT NULL DEFAULT now(),
    -- Sliding: pushed forward on every refresh, never past created_at + SESSION_MAX_AGE.
    expires_at     timestamptz NOT NULL,
    revoked_at     timestamptz,
    revoked_reason text
);
-- logout-all and disabling a user revoke the user's live sessions and re-broadcast recent ones.
CREATE INDEX sessions_user_revoked ON sessions (user_id, revoked_at);
-- The purge finds expired and long-revoked sessions.
CREATE INDEX sessions_expires_at ON sessions (expires_at);

-- Refresh tokens are stored only as SHA-256 hashes. A token is used once: `used_at` is set when it
-- is rotated, and presenting it again is theft (the whole session is revoked).
CREATE TABLE refresh_tokens (
    token_hash bytea PRIMARY KEY CHECK (octet_length(token_hash) = 32),
    session_id uuid NOT NULL REFERENCES sessions (id) ON DELETE CASCADE,
    created_at timestamptz NOT NULL DEFAULT now(),
    used_at    timestamptz
);
CREATE INDEX refresh_tokens_session ON refresh_tokens (session_id);

-- Failed logins per normalised email, whether or not an account exists (so the throttle reveals
-- nothing): after LOGIN_MAX_FAILURES, each further failure doubles the wait.
CREATE TABLE login_throttle (
    email        text PRIMARY KEY,
    failures     integer NOT NULL,
    locked_until timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_throttle_updated_at ON login_throttle (updated_at);
