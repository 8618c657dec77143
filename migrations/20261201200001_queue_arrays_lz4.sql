-- The queues' id arrays compressed with lz4 instead of pglz.
--
-- A booking batch queues its ledger entries for the chain and the outbox,
-- and its conversions' outcomes for the outbox: arrays of up to a batch's
-- ids (1,000 bigints, 8 KB), over the 2 KB at which Postgres compresses a
-- value. pglz took about 1.3 ms per such array (1.6% of Postgres's CPU in
-- benches/conversions_load.sh under perf); lz4 about an eighth of that. The
-- rows live milliseconds, until a worker takes them: compression buys
-- nothing but the WAL it saves, which lz4 keeps most of.
--
-- A server built without lz4 refuses the setting (feature_not_supported);
-- it keeps pglz then, as before.
do $$
begin
    alter table outbox_queue
        alter column ids set compression lz4,
        alter column statuses set compression lz4;
    alter table ledger_chain_queue
        alter column entry_ids set compression lz4;
exception when feature_not_supported then
    raise notice 'this server has no lz4: the queues keep pglz';
end
$$;
