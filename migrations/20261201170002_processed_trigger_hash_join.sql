-- The processed-conversions trigger matched its old and new rows by a
-- nested loop: the planner knows nothing of a transition table's size, and
-- for attribution's batch (500 rows) compared every row with every other,
-- 250,000 comparisons a batch (about 6 ms of a 40 ms statement,
-- benches/conversions_load.sh). The same statement, hashed.
create or replace function outbox_conversions_processed() returns trigger language plpgsql
set enable_nestloop = off as $$
begin
    insert into outbox_queue (source, ids, statuses)
    select 'processed', array_agg(n.id order by n.id), array_agg(n.status order by n.id)
    from new_rows n join old_rows o on o.id = n.id
    where n.status is distinct from o.status
      and n.status in ('attributed', 'unattributed', 'rejected')
      and n.event <> 'refund'
    having count(*) > 0;
    return null;
end;
$$;
