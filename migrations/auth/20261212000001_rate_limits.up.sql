-- Rate limits shared by every replica (platform::ratelimit, GCRA): one row per scope and key with
-- its theoretical arrival time. UNLOGGED: not worth a WAL write per request; emptied after a
-- PostgreSQL crash (clients then get a fresh budget once). No index on tat, so updates stay HOT;
-- the periodic purge scans this small table instead.
CREATE UNLOGGED TABLE rate_limits (
    key text PRIMARY KEY,
    tat timestamptz NOT NULL
);
