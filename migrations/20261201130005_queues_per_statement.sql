-- Lighter triggers on the money path: one queue row per statement.
--
-- The outbox triggers wrote one event per changed row, its JSON payload
-- built inside the statement that made the change, and the chain's queue
-- one row per ledger entry. Measured on the development machine, storing
-- 20,000 conversions in one statement spent a third of its time in the
-- outbox trigger, and attribution's outcome update two fifths. Now each
-- trigger writes one row per statement: the ids of the rows that changed
-- (and, for processed conversions, the status each reached). The webhooks
-- worker expands the outbox queue into the same events, in queue order
-- (`outbox_expand`), and the chainer reads the chain's queue the same way.
-- What a payload shows is fixed once its change is made (amounts, order
-- ids, agreement versions, ledger entries), so expanding it a moment later
-- shows what happened, and the event keeps the time it was queued.

create table outbox_queue (
    id bigint generated always as identity primary key,
    source text not null check (source in
        ('conversions', 'processed', 'ledger', 'payouts', 'enrollments', 'claims')),
    ids bigint[] not null,
    -- processed: the status each conversion reached, in the order of ids.
    statuses text[],
    queued_at timestamptz not null default now()
);

create or replace function outbox_conversions_received() returns trigger language plpgsql as $$
begin
    insert into outbox_queue (source, ids)
    select 'conversions', array_agg(id order by id) from new_rows having count(*) > 0;
    return null;
end;
$$;

create or replace function outbox_conversions_processed() returns trigger language plpgsql as $$
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

create or replace function outbox_ledger() returns trigger language plpgsql as $$
begin
    insert into outbox_queue (source, ids)
    select 'ledger', array_agg(e.id order by e.id) from new_entries e
    where e.commission_id is not null
      and (e.kind in ('created', 'adjusted', 'reversed', 'rejected', 'carried')
           or (e.kind = 'approved' and e.bucket = 'approved'))
    having count(*) > 0;
    return null;
end;
$$;

create or replace function outbox_payouts() returns trigger language plpgsql as $$
begin
    insert into outbox_queue (source, ids)
    select 'payouts', array_agg(distinct payout_id) from new_items having count(*) > 0;
    return null;
end;
$$;

create or replace function outbox_enrollments() returns trigger language plpgsql as $$
begin
    insert into outbox_queue (source, ids)
    select 'enrollments', array_agg(id order by id) from new_events having count(*) > 0;
    return null;
end;
$$;

create or replace function outbox_claims() returns trigger language plpgsql as $$
begin
    insert into outbox_queue (source, ids)
    select 'claims', array_agg(id order by id) from new_events having count(*) > 0;
    return null;
end;
$$;

-- Turns up to `batches` queue rows into events, oldest first; answers how
-- many it took. Concurrent callers take different rows.
create function outbox_expand(batches integer) returns integer language plpgsql as $$
declare
    q record;
    taken integer := 0;
begin
    for q in
        select id, source, ids, statuses, queued_at from outbox_queue
        order by id limit batches for update skip locked
    loop
        if q.source = 'conversions' then
            insert into outbox_events (type, program_id, data, created_at)
            select 'conversion.received', n.program_id,
                   jsonb_build_object('conversion_id', n.id, 'program_id', n.program_id,
                                      'order_id', n.order_id, 'event', n.event,
                                      'amount_minor', n.amount_minor, 'currency', n.currency,
                                      'occurred_at', n.occurred_at),
                   q.queued_at
            from conversions n where n.id = any(q.ids) order by n.id;
        elsif q.source = 'processed' then
            insert into outbox_events (type, program_id, partner_ids, data, created_at)
            select 'conversion.' || u.status, n.program_id,
                   case when u.status = 'attributed' then
                       coalesce((select array_agg(c.partner_id order by c.partner_id)
                                 from commissions c where c.conversion_id = n.id), '{}')
                   else '{}' end,
                   jsonb_build_object('conversion_id', n.id, 'program_id', n.program_id,
                                      'order_id', n.order_id, 'event', n.event,
                                      'amount_minor', n.amount_minor, 'currency', n.currency,
                                      'occurred_at', n.occurred_at, 'status', u.status,
                                      'reason', n.reason, 'agreement_id', n.agreement_id,
                                      'agreement_version', n.agreement_version,
                                      'link_id', n.link_id),
                   q.queued_at
            from unnest(q.ids, q.statuses) with ordinality as u(id, status, i)
            join conversions n on n.id = u.id
            order by u.i;
        elsif q.source = 'ledger' then
            insert into outbox_events (type, program_id, partner_ids, data, created_at)
            select 'commission.' || case e.kind when 'carried' then 'adjusted' else e.kind end,
                   e.program_id, array[e.partner_id],
                   jsonb_build_object('commission_id', e.commission_id, 'program_id', e.program_id,
                                      'partner_id', e.partner_id, 'conversion_id', c.conversion_id,
                                      'order_id', v.order_id, 'event', v.event,
                                      'agreement_id', c.agreement_id,
                                      'agreement_version', c.agreement_version,
                                      'change_minor', e.amount_minor, 'currency', e.currency,
                                      'bucket', e.bucket, 'reason', e.reason, 'actor', e.actor,
                                      'entry_id', e.id),
                   q.queued_at
            from ledger_entries e
            left join commissions c on c.id = e.commission_id
            left join conversions v on v.id = c.conversion_id
            where e.id = any(q.ids)
            order by e.id;
        elsif q.source = 'payouts' then
            insert into outbox_events (type, program_id, partner_ids, data, created_at)
            select 'payout.paid', p.program_id, array[i.partner_id],
                   jsonb_build_object('payout_id', i.payout_id, 'program_id', p.program_id,
                                      'partner_id', i.partner_id, 'amount_minor', i.amount_minor,
                                      'currency', i.currency, 'commission_count', i.commission_count),
                   q.queued_at
            from payout_items i join payouts p on p.id = i.payout_id
            where i.payout_id = any(q.ids)
            order by i.payout_id, i.partner_id, i.currency;
        elsif q.source = 'enrollments' then
            insert into outbox_events (type, program_id, partner_ids, data, created_at)
            select case when v.to_status = 'active' then 'partner.enrolled' else 'partner.deactivated' end,
                   n.program_id, array[n.partner_id],
                   jsonb_build_object('enrollment_id', n.id, 'program_id', n.program_id,
                                      'partner_id', n.partner_id, 'status', v.to_status,
                                      'reason_code', v.reason_code, 'actor', v.actor),
                   q.queued_at
            from enrollment_events v join enrollments n on n.id = v.enrollment_id
            where v.id = any(q.ids) and n.partner_id is not null
              and v.to_status in ('active', 'deactivated', 'banned')
              and v.from_status is distinct from v.to_status
            order by v.id;
        elsif q.source = 'claims' then
            insert into outbox_events (type, program_id, partner_ids, data, created_at)
            select 'claim.' || v.action, c.program_id, array[c.partner_id],
                   jsonb_build_object('claim_id', c.id, 'program_id', c.program_id,
                                      'partner_id', c.partner_id, 'kind', c.kind,
                                      'order_id', c.order_id, 'commission_id', c.commission_id,
                                      'actor', v.actor, 'reason_code', v.reason_code,
                                      'note', v.note, 'deadline_at', c.deadline_at),
                   q.queued_at
            from claim_events v join claims c on c.id = v.claim_id
            where v.id = any(q.ids)
            order by v.id;
        end if;
        delete from outbox_queue where id = q.id;
        taken := taken + 1;
    end loop;
    return taken;
end;
$$;

-- The chain's queue, likewise: the ids of each insert's entries.
create table ledger_chain_queue (
    id bigint generated always as identity primary key,
    entry_ids bigint[] not null,
    queued_at timestamptz not null default now()
);
insert into ledger_chain_queue (entry_ids, queued_at)
select array_agg(entry_id order by entry_id), min(queued_at) from ledger_unchained
having count(*) > 0;

create or replace function ledger_queue_for_chain() returns trigger language plpgsql as $$
begin
    insert into ledger_chain_queue (entry_ids)
    select array_agg(id order by id) from new_entries having count(*) > 0;
    return null;
end;
$$;
drop table ledger_unchained;
