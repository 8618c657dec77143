-- The queue triggers plan their deletes for the queue as it is when they
-- run, not as it was when a session first ran them.
--
-- A PL/pgSQL statement keeps the plan made the first time its session ran
-- it, until the table's statistics change. The delete of booked ids from
-- `attribution_queue` was planned while the queue was nearly empty (a
-- worker keeping up, or the moment after an autovacuum), as a scan of the
-- whole queue with the ids as an array to compare each row against, one
-- by one; a backlog then made every booked batch cost queue x batch
-- comparisons (a burst of 20,000 sales in benches/conversions_load.sh:
-- batches of 500 against a queue of thousands, 4-10 ms a statement where
-- the primary key answers in under 1 ms; 500 ids against 20,000 queued rows
-- in psql: 49.7 ms, against 0.75 ms through the key). EXECUTE ... USING
-- plans each call with the ids as constants: through the primary key when
-- the queue is large, and a small queue is scanned with the ids hashed.
create or replace function attribution_queue_on_update() returns trigger language plpgsql as $$
declare
    ids bigint[];
begin
    ids := array(select id from new_rows where status <> 'received');
    if cardinality(ids) > 0 then
        execute 'delete from attribution_queue where conversion_id = any ($1)' using ids;
    end if;
    insert into attribution_queue (conversion_id)
    select id from new_rows where status = 'received'
    on conflict do nothing;
    ids := array(select id from new_rows where status <> 'waiting');
    if cardinality(ids) > 0 then
        execute 'delete from refunds_waiting where conversion_id = any ($1)' using ids;
    end if;
    insert into refunds_waiting (conversion_id)
    select id from new_rows where status = 'waiting'
    on conflict do nothing;
    return null;
end;
$$;
