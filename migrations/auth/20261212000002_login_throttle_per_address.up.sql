-- Failed logins are counted per (email, client address) and per email.
--
-- The pair's counter blocks: after LOGIN_MAX_FAILURES failures from one address, that address
-- must wait 1, 2, 4 … s (at most 15 min) before trying the email again, the right password
-- included. The email's counter only slows: from LOGIN_MAX_FAILURES failures from anywhere (within
-- 15 min of the last one), every attempt at the email waits a bounded delay before it is checked
-- (LOGIN_ACCOUNT_MAX_DELAY), so the owner, from another address, still gets in. Both are keyed by
-- the normalised email whether or not an account exists, so they reveal nothing. `client` is the
-- IPv4 address, or the IPv6 address's /64 network (`platform::ratelimit::client_key`).
--
-- Expand only: the previous release's per-email `login_throttle` stays as it is, because its pods
-- keep running on this schema during a rolling upgrade and after `helm rollback`
-- (`INSERT … ON CONFLICT (email)`). This release no longer reads or writes it (its purge and
-- account deletion still clear it); a later release drops it (docs/operations.md, "Pending
-- contract steps").
CREATE TABLE login_throttle_pairs (
    email        text NOT NULL,
    client       inet NOT NULL,
    failures     integer NOT NULL,
    locked_until timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (email, client)
);
CREATE INDEX login_throttle_pairs_updated_at ON login_throttle_pairs (updated_at);

CREATE TABLE login_account_failures (
    email      text PRIMARY KEY,
    failures   integer NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_account_failures_updated_at ON login_account_failures (updated_at);
