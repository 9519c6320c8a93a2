-- Back to the per-email counter alone, which the up step left in place (the per-address and
-- per-email counts of this release are lost: at most 15 min of locks).
DROP TABLE login_account_failures;
DROP TABLE login_throttle_pairs;
