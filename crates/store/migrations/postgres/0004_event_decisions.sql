-- What a policy said of a change event before it was recorded: whether it
-- fired the watch's triggers, and why. NULL acted: no policy judged it
-- (every policy involved was `always`), so it fired.
ALTER TABLE change_events ADD COLUMN acted BOOLEAN;
ALTER TABLE change_events ADD COLUMN reason TEXT;
