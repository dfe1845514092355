-- 005: whose cloud instance a run is on (core/providers: "vast", ...), so that the engine
-- resolves each run's provider as it resolves its transport. Every run before this was Vast's.
ALTER TABLE runs ADD COLUMN provider TEXT NOT NULL DEFAULT 'vast';
