-- tickets_status_created served no query, yet cost an index write for every new ticket and
-- two for every decision (the status changes).
ALTER TABLE tickets DROP INDEX tickets_status_created;
