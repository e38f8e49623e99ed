-- Tickets, rule results, the outbox of unconfirmed messages, and messages set aside.
CREATE TABLE IF NOT EXISTS tickets (
    id             CHAR(36) CHARACTER SET ascii NOT NULL,
    age            SMALLINT UNSIGNED NOT NULL,
    value          DECIMAL(15, 2) NOT NULL,
    status         ENUM('PENDING', 'APPROVED', 'NOT_APPROVED') NOT NULL DEFAULT 'PENDING',
    required_rules VARCHAR(512) NOT NULL,
    created_at     DATETIME(6) NOT NULL,
    decided_at     DATETIME(6) NULL,
    PRIMARY KEY (id),
    KEY tickets_status_created (status, created_at)
) ENGINE = InnoDB;

CREATE TABLE IF NOT EXISTS rule_results (
    ticket_id   CHAR(36) CHARACTER SET ascii NOT NULL,
    rule        VARCHAR(64) CHARACTER SET ascii NOT NULL,
    passed      BOOLEAN NOT NULL,
    reason      VARCHAR(512) NOT NULL,
    recorded_at DATETIME(6) NOT NULL,
    PRIMARY KEY (ticket_id, rule)
) ENGINE = InnoDB;

CREATE TABLE IF NOT EXISTS outbox (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    ticket_id   CHAR(36) CHARACTER SET ascii NOT NULL,
    rule        VARCHAR(64) CHARACTER SET ascii NOT NULL,
    body        VARBINARY(4096) NOT NULL,
    created_at  DATETIME(6) NOT NULL,
    attempts    INT UNSIGNED NOT NULL DEFAULT 0,
    last_error  VARCHAR(512) NULL,
    PRIMARY KEY (id),
    UNIQUE KEY outbox_message (ticket_id, rule),
    KEY outbox_created (created_at)
) ENGINE = InnoDB;

CREATE TABLE IF NOT EXISTS rejected_messages (
    id          BIGINT UNSIGNED NOT NULL AUTO_INCREMENT,
    source      VARCHAR(255) NOT NULL,
    message_id  VARCHAR(255) NULL,
    body_sha256 BINARY(32) NOT NULL,
    body        MEDIUMBLOB NOT NULL,
    reason      VARCHAR(1024) NOT NULL,
    received_at DATETIME(6) NOT NULL,
    PRIMARY KEY (id),
    UNIQUE KEY rejected_source_body (source, body_sha256)
) ENGINE = InnoDB;
