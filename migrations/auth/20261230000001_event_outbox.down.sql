DROP TABLE event_outbox;
DROP FUNCTION event_outbox_notify();
