-- 006: the buttons under loud alerts and the pending confirmations of /kill and /teardown
-- (issue 14). Stored, so that a button pressed after `serve` restarted still works, or says
-- clearly that it expired, instead of being void.
-- kind: 'alert' (a row of actions under an alert; `actions` lists them, comma-separated) or
-- 'confirm' (a Confirm/Cancel question; `actions` is the one action asked, `user_id` who asked).
-- used_at: when a confirmation was answered (a second press finds it used).
CREATE TABLE buttons (
    nonce     TEXT NOT NULL PRIMARY KEY CHECK (length(nonce) BETWEEN 8 AND 40),
    kind      TEXT NOT NULL CHECK (kind IN ('alert', 'confirm')),
    actions   TEXT NOT NULL,
    run       TEXT NOT NULL,
    chat_id   INTEGER NOT NULL,
    user_id   INTEGER,
    issued_at TEXT NOT NULL,
    used_at   TEXT
) WITHOUT ROWID;
CREATE INDEX buttons_by_age ON buttons (issued_at);
