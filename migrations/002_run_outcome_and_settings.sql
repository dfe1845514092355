-- 002: how a run ended, and the settings it was launched with.
-- outcome: the supervisor's outcome (completed, budget_exhausted, ...) or the watcher's ending
-- (deadline_passed, instance_lost, teardown_requested); NULL while the run is live.
-- settings: the run's resolved settings as JSON (core.config.RunSettings), written at launch so
-- that a serve started with another config file (or none) watches the run as it was launched.
ALTER TABLE runs ADD COLUMN outcome TEXT;
ALTER TABLE runs ADD COLUMN settings TEXT;
