-- Cascades the watcher runs on its own (`on_change: [cascade]`): the change
-- event that started a run, so a cascade taken again after a crash or a
-- failure resumes its run instead of starting a second one. NULL for runs
-- started by hand (`freshen rebuild`); unique otherwise.
ALTER TABLE rebuild_runs ADD COLUMN event_id TEXT;
CREATE UNIQUE INDEX rebuild_runs_event_id ON rebuild_runs (event_id);
