-- 004: money that is never forgotten (issue 13).
-- cost_extended_usd: what /extend added to the run's max_cost (the cap moves with the deadline).
-- kept_acked_at: when /keep acknowledged an instance left billing after its run ended; its
-- reminders stop then. Both are the human's columns: the watcher's writes leave them as stored.
ALTER TABLE runs ADD COLUMN cost_extended_usd REAL NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN kept_acked_at TEXT;
