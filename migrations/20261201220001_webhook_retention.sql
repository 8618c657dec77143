-- Outgoing webhooks' history is kept for MITRA_WEBHOOK_RETENTION_DAYS, then
-- purged (src/outbox/retention.rs): an event, its deliveries and their
-- attempts go together once the event and its newest delivery (a replay is
-- a delivery of the same event) are older than that and none is pending.
--
-- Deleting an event, or a delivery, has Postgres check that nothing still
-- refers to it. Neither reference had an index: every deleted row would
-- have been a scan of all deliveries. The purge also finds an event's
-- deliveries by event_id. A replay is rare, so its index holds replays only.
create index webhook_deliveries_event on webhook_deliveries (event_id);
create index webhook_deliveries_replay_of on webhook_deliveries (replay_of)
    where replay_of is not null;
