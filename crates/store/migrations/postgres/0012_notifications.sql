-- Notifications: a delivery may carry a rebuild run's or a roll-out's
-- result (`notify:`), so `event_id` names the event, run or roll-out a
-- delivery is about and no longer references change_events. `dedup_key`
-- makes such a result's deliveries unique: written with the run's final
-- state, once per (run, state, trigger), however often the run ends.
ALTER TABLE deliveries DROP CONSTRAINT deliveries_event_id_fkey;
ALTER TABLE deliveries ADD COLUMN dedup_key TEXT;
CREATE UNIQUE INDEX deliveries_dedup_key ON deliveries (dedup_key);
