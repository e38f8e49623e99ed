-- Idempotency-Key records: the ticket a key created and the fingerprint (SHA-256) of the
-- validated request it came with. Written in the ticket's own transaction, so a key names a
-- ticket exactly when that ticket is stored. The key is compared byte for byte (VARBINARY:
-- no case folding, no trailing-space padding); created_at serves expiry and the purge.
CREATE TABLE IF NOT EXISTS idempotency_keys (
    idempotency_key VARBINARY(255) NOT NULL,
    fingerprint     BINARY(32) NOT NULL,
    ticket_id       CHAR(36) CHARACTER SET ascii NOT NULL,
    created_at      DATETIME(6) NOT NULL,
    PRIMARY KEY (idempotency_key),
    KEY idempotency_keys_created (created_at)
) ENGINE = InnoDB;
