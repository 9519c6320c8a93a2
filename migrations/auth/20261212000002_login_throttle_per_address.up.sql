-- Failed logins are counted per (email, client address) and per email.
--
-- The pair's counter blocks: after LOGIN_MAX_FAILURES failures from one address, that address
-- must wait 1, 2, 4 … s (at most 15 min) before trying the email again, the right password
-- included. The email's counter only slows: from LOGIN_MAX_FAILURES failures from anywhere (within
-- 15 min of the last one), every attempt at the email waits a bounded delay before it is checked
-- (LOGIN_ACCOUNT_MAX_DELAY), so the owner, from another address, still gets in. Both are keyed by
-- the normalised email whether or not an account exists, so they reveal nothing.
--
-- The old per-email counters cannot be split by address; they are dropped (at most 15 min of
-- locks are lost).
DROP TABLE login_throttle;

CREATE TABLE login_throttle (
    email        text NOT NULL,
    client       inet NOT NULL,
    failures     integer NOT NULL,
    locked_until timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (email, client)
);
CREATE INDEX login_throttle_updated_at ON login_throttle (updated_at);

CREATE TABLE login_account_failures (
    email      text PRIMARY KEY,
    failures   integer NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_account_failures_updated_at ON login_account_failures (updated_at);
