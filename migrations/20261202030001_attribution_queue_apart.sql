-- The attribution queue moves out of the conversions table's indexes, so
-- that the outcome a worker writes on a conversion is a HOT update.
--
-- The queue was two partial indexes on `conversions` (`status =
-- 'received'`, `status = 'waiting'`). An index whose predicate names a
-- column makes every change of that column a non-HOT update: the outcome's
-- update wrote a new version on another page and entered it in the five
-- other indexes again (about 5 of the 35 index entries a booked sale
-- writes). Now the queue is two tables of ids, kept by triggers, and no
-- index of `conversions` names `status`: with room on the page (fillfactor
-- below), the outcome's version stays on its page and enters no index.
--
-- The triggers keep the invariant whichever statement changes a status
-- (intake, booking, the waiting refunds' requeue, an older binary still
-- running through a rolling deploy):
--   attribution_queue holds exactly the conversions whose status is 'received',
--   refunds_waiting holds exactly those whose status is 'waiting'.

-- No foreign key to conversions: a conversion is never deleted
-- (conversions_never_deleted), and its id never changes; rows come only
-- from the triggers below, which take them from conversions' own rows.
create table attribution_queue (
    conversion_id bigint primary key
);
-- Every booked batch deletes its rows: vacuum it by dead rows, not by a
-- fraction of a table that is nearly empty when workers keep up.
alter table attribution_queue set (autovacuum_vacuum_scale_factor = 0, autovacuum_vacuum_threshold = 10000);

create table refunds_waiting (
    conversion_id bigint primary key
);

create function attribution_queue_on_insert() returns trigger language plpgsql as $$
begin
    insert into attribution_queue (conversion_id) select id from new_rows where status = 'received';
    insert into refunds_waiting (conversion_id) select id from new_rows where status = 'waiting';
    return null;
end;
$$;

-- `= any (array(...))`: transition tables have no statistics, and a join
-- to them may be planned as a scan of the whole queue; an array of ids is
-- always looked up through the primary key.
create function attribution_queue_on_update() returns trigger language plpgsql as $$
begin
    delete from attribution_queue
    where conversion_id = any (array(select id from new_rows where status <> 'received'));
    insert into attribution_queue (conversion_id)
    select id from new_rows where status = 'received'
    on conflict do nothing;
    delete from refunds_waiting
    where conversion_id = any (array(select id from new_rows where status <> 'waiting'));
    insert into refunds_waiting (conversion_id)
    select id from new_rows where status = 'waiting'
    on conflict do nothing;
    return null;
end;
$$;

-- Transition tables cannot be combined with `update of status`: the
-- update trigger fires on every update, and finds nothing to do when no
-- status changed.
create trigger attribution_queue_on_insert after insert on conversions
    referencing new table as new_rows
    for each statement execute function attribution_queue_on_insert();
create trigger attribution_queue_on_update after update on conversions
    referencing new table as new_rows
    for each statement execute function attribution_queue_on_update();

-- The queue as it stands, copied after the triggers exist: creating them
-- locked conversions against writes (share row exclusive) until this
-- migration's transaction commits, so no conversion is written between
-- the copy and the triggers.
insert into attribution_queue (conversion_id) select id from conversions where status = 'received';
insert into refunds_waiting (conversion_id) select id from conversions where status = 'waiting';

drop index conversions_to_attribute;
drop index conversions_waiting;

-- Room on each page for its rows' next versions: a conversion is inserted
-- once and updated with its outcome within seconds, usually together with
-- the rest of its page in one transaction, so a page needs free space for
-- a new version of every row on it (the outcome's is a little longer). At
-- 45, a bench of 3,960 outcomes on 18-row intake statements were all HOT
-- (50: 85%, 60: 61%, 70: 39%), and the table was no larger: a non-HOT
-- version takes as much room, on another page. It applies to pages
-- filled from now on.
alter table conversions set (fillfactor = 45);
