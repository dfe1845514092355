-- 001: the watcher's store of record.
-- Datetimes are ISO-8601 UTC text of one fixed width ("YYYY-MM-DDTHH:MM:SS.ffffffZ"),
-- so that comparing the text compares the times. JSON documents are stored as text.
-- No BEGIN/COMMIT here: core/migrate.py runs each file in its own transaction.

CREATE TABLE runs (
    name             TEXT NOT NULL PRIMARY KEY CHECK (length(name) > 0),
    run_dir          TEXT NOT NULL,
    launched_at      TEXT NOT NULL,
    instance_id      TEXT,
    ssh_host         TEXT,
    ssh_port         INTEGER,
    ssh_user         TEXT,
    live             INTEGER NOT NULL CHECK (live IN (0, 1)),
    status           TEXT NOT NULL,
    attempt          INTEGER NOT NULL CHECK (attempt >= 0),
    max_attempts     INTEGER NOT NULL CHECK (max_attempts >= 0),
    deadline_at      TEXT,
    muted_until      TEXT,
    log_attempt      INTEGER NOT NULL CHECK (log_attempt >= 0),
    log_offset       INTEGER NOT NULL CHECK (log_offset >= 0),
    memory           TEXT NOT NULL,
    last_status_line TEXT,
    last_check_at    TEXT,
    next_check_at    TEXT,
    interval_s       REAL,
    dph_total        REAL,
    teardown         TEXT,
    torn_down_at     TEXT,
    ended_at         TEXT
);

-- One row per check: the status line exactly as printed.
CREATE TABLE checks (
    id          INTEGER PRIMARY KEY,
    run         TEXT NOT NULL REFERENCES runs (name) ON DELETE CASCADE,
    at          TEXT NOT NULL,
    status_line TEXT NOT NULL CHECK (length(status_line) > 0),
    health      TEXT NOT NULL CHECK (length(health) > 0),
    reasons     TEXT NOT NULL DEFAULT '[]'
);
CREATE INDEX checks_by_run ON checks (run, at DESC, id DESC);

-- Alerts keyed by (run, condition); resolved ones are kept as history.
CREATE TABLE alerts (
    id           INTEGER PRIMARY KEY,
    run          TEXT NOT NULL REFERENCES runs (name) ON DELETE CASCADE,
    condition    TEXT NOT NULL CHECK (length(condition) > 0),
    opened_at    TEXT NOT NULL,
    last_sent_at TEXT,
    message      TEXT NOT NULL,
    resolved_at  TEXT
);
-- At most one OPEN alert per (run, condition).
CREATE UNIQUE INDEX alerts_one_open ON alerts (run, condition) WHERE resolved_at IS NULL;

-- Every notification is stored here before it is sent and marked sent after.
-- AUTOINCREMENT: ids are never reused, so id order stays creation order.
-- run has no foreign key: replies and summaries may name no run, or one not stored.
CREATE TABLE outbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    dedupe_key  TEXT UNIQUE,
    kind        TEXT NOT NULL,
    run         TEXT,
    message     TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    next_try_at TEXT NOT NULL,
    attempts    INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_error  TEXT,
    sent_at     TEXT
);
CREATE INDEX outbox_unsent ON outbox (next_try_at, id) WHERE sent_at IS NULL;

-- Side effects done at most once (teardown, kill of one attempt): claimed before acting.
CREATE TABLE actions (
    run         TEXT NOT NULL,
    key         TEXT NOT NULL,
    claimed_at  TEXT NOT NULL,
    result      TEXT,
    finished_at TEXT,
    PRIMARY KEY (run, key)
) WITHOUT ROWID;

-- Every chat update, refused or executed.
CREATE TABLE audit (
    id      INTEGER PRIMARY KEY,
    at      TEXT NOT NULL,
    chat_id INTEGER,
    user_id INTEGER,
    command TEXT NOT NULL,
    verdict TEXT NOT NULL
);

-- Small service facts (e.g. the date of the last morning summary).
CREATE TABLE meta (
    key   TEXT NOT NULL PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
