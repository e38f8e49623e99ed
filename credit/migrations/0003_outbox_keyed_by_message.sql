-- An outbox row is one message, so (ticket_id, rule) is its key. The surrogate id was a third
-- index to write on every insert and every delete, two of each per ticket. Rows waiting for
-- the relay are kept.
ALTER TABLE outbox
    DROP PRIMARY KEY,
    DROP COLUMN id,
    DROP INDEX outbox_message,
    ADD PRIMARY KEY (ticket_id, rule);
