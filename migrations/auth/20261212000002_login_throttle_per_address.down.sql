-- Back to one counter per email (counts restart from zero).
DROP TABLE login_account_failures;
DROP TABLE login_throttle;

CREATE TABLE login_throttle (
    email        text PRIMARY KEY,
    failures     integer NOT NULL,
    locked_until timestamptz,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX login_throttle_updated_at ON login_throttle (updated_at);
