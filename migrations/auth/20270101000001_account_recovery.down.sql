-- Unsent verification and reset e-mails and every outstanding token are lost; users ask again.
DROP TABLE job_outbox;
DROP FUNCTION job_outbox_forget_link();
DROP FUNCTION job_outbox_notify();
DROP TABLE password_reset_requests;
DROP TABLE account_tokens;
ALTER TABLE users DROP COLUMN email_verified_at;
