-- Changes are queued for the outbox only while some webhook endpoint or
-- postback is live.
--
-- Since 20261201170001 the expansion builds events only for live
-- endpoints, and with none it builds nothing; but every change was still
-- queued for it: a row in `outbox_queue` (with its index entry) per
-- webhook statement and per booking batch, locked, read and deleted again
-- by the expansion, and the outcome's trigger joined the statement's old
-- and new rows to find the changed statuses. An installation without
-- outgoing webhooks (one shop tracking its own partners) paid that for
-- every sale. Now each trigger returns at once when no endpoint is live.
--
-- What an endpoint receives is unchanged for changes written while it
-- exists. A change written while none existed was dropped at expansion
-- unless an endpoint appeared in the moment between its commit and the
-- expansion (at most the worker's poll); now it is not queued at all, so an
-- endpoint receives the changes written after it was created.

-- The test is written out in each trigger, not called as a SQL function:
-- PL/pgSQL keeps the plan of a query of its own across transactions, while
-- a SQL function's body is planned again in every transaction that calls
-- it (pgbench of the one-row intake insert: that made the statement slower
-- than queueing the row; written out, 5-15% faster).
create or replace function outbox_conversions_received() returns trigger language plpgsql as $$
begin
    if not exists (select 1 from webhook_endpoints where deleted_at is null) then
        return null;
    end if;
    insert into outbox_queue (source, ids)
    select 'conversions', array_agg(id order by id) from new_rows having count(*) > 0;
    return null;
end;
$$;

create or replace function outbox_conversions_processed() returns trigger language plpgsql as $$
begin
    if not exists (select 1 from webhook_endpoints where deleted_at is null) then
        return null;
    end if;
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

create or replace function outbox_ledger() returns trigger language plpgsql as $$
begin
    if not exists (select 1 from webhook_endpoints where deleted_at is null) then
        return null;
    end if;
    insert into outbox_queue (source, ids)
    select 'ledger', array_agg(e.id order by e.id) from new_entries e
    where e.commission_id is not null
      and (e.kind in ('created', 'adjusted', 'reversed', 'rejected', 'carried', 'bonus',
                          'tier_adjustment')
           or (e.kind = 'approved' and e.bucket = 'approved'))
    having count(*) > 0;
    return null;
end;
$$;

create or replace function outbox_payouts() returns trigger language plpgsql as $$
begin
    if not exists (select 1 from webhook_endpoints where deleted_at is null) then
        return null;
    end if;
    insert into outbox_queue (source, ids)
    select 'payouts', array_agg(distinct payout_id) from new_items having count(*) > 0;
    return null;
end;
$$;

create or replace function outbox_enrollments() returns trigger language plpgsql as $$
begin
    if not exists (select 1 from webhook_endpoints where deleted_at is null) then
        return null;
    end if;
    insert into outbox_queue (source, ids)
    select 'enrollments', array_agg(id order by id) from new_events having count(*) > 0;
    return null;
end;
$$;

create or replace function outbox_claims() returns trigger language plpgsql as $$
begin
    if not exists (select 1 from webhook_endpoints where deleted_at is null) then
        return null;
    end if;
    insert into outbox_queue (source, ids)
    select 'claims', array_agg(id order by id) from new_events having count(*) > 0;
    return null;
end;
$$;
