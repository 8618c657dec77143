-- Outbox events only for those who would receive them.
--
-- Every change was expanded into an event (`outbox_expand`), then fanned
-- out to the endpoints subscribed to it and marked dispatched. An event no
-- endpoint subscribes to makes no delivery, and only deliveries show an
-- event (the API lists an endpoint's deliveries; a replay repeats a
-- delivery): such an event was written, indexed and updated for no one.
-- On the money path that is every event of every program without an
-- endpoint: three per sale, most of the webhooks worker's Postgres time
-- (benches/conversions_load.sh, PG_STATS=1).
--
-- Now the expansion keeps only the events some live endpoint wants, judged
-- by the same condition the fan-out uses (`outbox_endpoint_wants`, used by
-- both), at the moment of expansion: after the change committed, as the
-- fan-out always was. Events wanted are written exactly as before, in the
-- same order. The queue rows are taken and deleted as before.

-- Whether endpoint `w` receives an event of this type, program and
-- partners ($2, $3, $4): the fan-out's condition (src/outbox/delivery.rs).
-- A single expression, so the planner inlines it.
create function outbox_endpoint_wants(w webhook_endpoints, type text, program_id bigint,
                                      partner_ids bigint[])
returns boolean language sql stable as $$
    select w.deleted_at is null and $2 = any(w.events)
       and ((w.kind = 'webhook' and (w.program_id = $3 or w.partner_id = any($4)))
         or (w.kind = 'postback' and w.scope_program_id = $3 and w.partner_id = any($4)))
$$;

create or replace function outbox_expand(batches integer) returns integer language plpgsql as $$
declare
    q record;
    taken integer := 0;
    -- No live endpoint at all: nothing is wanted, and nothing is built.
    anyone boolean := exists (select 1 from webhook_endpoints where deleted_at is null);
begin
    for q in
        select id, source, ids, statuses, queued_at from outbox_queue
        order by id limit batches for update skip locked
    loop
        if not anyone then
            null;
        elsif q.source = 'conversions' then
            insert into outbox_events (type, program_id, partner_ids, data, created_at)
            select ev.type, ev.program_id, ev.partner_ids, ev.data, ev.created_at from (
                select 'conversion.received' as type, n.program_id, '{}'::bigint[] as partner_ids,
                       jsonb_build_object('conversion_id', n.id, 'program_id', n.program_id,
                                          'order_id', n.order_id, 'event', n.event,
                                          'amount_minor', n.amount_minor, 'currency', n.currency,
                                          'occurred_at', n.occurred_at) as data,
                       q.queued_at as created_at
                from conversions n where n.id = any(q.ids) order by n.id
            ) ev
            where (select true from webhook_endpoints w
                   where outbox_endpoint_wants(w, ev.type, ev.program_id, ev.partner_ids) limit 1);
        elsif q.source = 'processed' then
            insert into outbox_events (type, program_id, partner_ids, data, created_at)
            select ev.type, ev.program_id, ev.partner_ids, ev.data, ev.created_at from (
                select 'conversion.' || u.status as type, n.program_id,
                       case when u.status = 'attributed' then
                           coalesce((select array_agg(c.partner_id order by c.partner_id)
                                     from commissions c where c.conversion_id = n.id), '{}')
                       else '{}' end as partner_ids,
                       jsonb_build_object('conversion_id', n.id, 'program_id', n.program_id,
                                          'order_id', n.order_id, 'event', n.event,
                                          'amount_minor', n.amount_minor, 'currency', n.currency,
                                          'occurred_at', n.occurred_at, 'status', u.status,
                                          'reason', n.reason, 'agreement_id', n.agreement_id,
                                          'agreement_version', n.agreement_version,
                                          'link_id', n.link_id) as data,
                       q.queued_at as created_at
                from unnest(q.ids, q.statuses) with ordinality as u(id, status, i)
                join conversions n on n.id = u.id
                order by u.i
            ) ev
            where (select true from webhook_endpoints w
                   where outbox_endpoint_wants(w, ev.type, ev.program_id, ev.partner_ids) limit 1);
        elsif q.source = 'ledger' then
            insert into outbox_events (type, program_id, partner_ids, data, created_at)
            select ev.type, ev.program_id, ev.partner_ids, ev.data, ev.created_at from (
                select 'commission.' || case e.kind when 'carried' then 'adjusted'
                                                  when 'tier_adjustment' then 'adjusted'
                                                  when 'bonus' then 'created'
                                                  else e.kind end as type,
                       e.program_id, array[e.partner_id] as partner_ids,
                       jsonb_build_object('commission_id', e.commission_id, 'program_id', e.program_id,
                                          'partner_id', e.partner_id, 'conversion_id', c.conversion_id,
                                          'order_id', v.order_id, 'event', v.event,
                                          'agreement_id', c.agreement_id,
                                          'agreement_version', c.agreement_version,
                                          'change_minor', e.amount_minor, 'currency', e.currency,
                                          'bucket', e.bucket, 'reason', e.reason, 'actor', e.actor,
                                          'entry_id', e.id, 'commission_kind', c.kind) as data,
                       q.queued_at as created_at
                from ledger_entries e
                left join commissions c on c.id = e.commission_id
                left join conversions v on v.id = c.conversion_id
                where e.id = any(q.ids)
                order by e.id
            ) ev
            where (select true from webhook_endpoints w
                   where outbox_endpoint_wants(w, ev.type, ev.program_id, ev.partner_ids) limit 1);
        elsif q.source = 'payouts' then
            insert into outbox_events (type, program_id, partner_ids, data, created_at)
            select ev.type, ev.program_id, ev.partner_ids, ev.data, ev.created_at from (
                select 'payout.paid' as type, p.program_id, array[i.partner_id] as partner_ids,
                       jsonb_build_object('payout_id', i.payout_id, 'program_id', p.program_id,
                                          'partner_id', i.partner_id, 'amount_minor', i.amount_minor,
                                          'currency', i.currency,
                                          'commission_count', i.commission_count) as data,
                       q.queued_at as created_at
                from payout_items i join payouts p on p.id = i.payout_id
                where i.payout_id = any(q.ids)
                order by i.payout_id, i.partner_id, i.currency
            ) ev
            where (select true from webhook_endpoints w
                   where outbox_endpoint_wants(w, ev.type, ev.program_id, ev.partner_ids) limit 1);
        elsif q.source = 'enrollments' then
            insert into outbox_events (type, program_id, partner_ids, data, created_at)
            select ev.type, ev.program_id, ev.partner_ids, ev.data, ev.created_at from (
                select case when v.to_status = 'active' then 'partner.enrolled'
                            else 'partner.deactivated' end as type,
                       n.program_id, array[n.partner_id] as partner_ids,
                       jsonb_build_object('enrollment_id', n.id, 'program_id', n.program_id,
                                          'partner_id', n.partner_id, 'status', v.to_status,
                                          'reason_code', v.reason_code, 'actor', v.actor) as data,
                       q.queued_at as created_at
                from enrollment_events v join enrollments n on n.id = v.enrollment_id
                where v.id = any(q.ids) and n.partner_id is not null
                  and v.to_status in ('active', 'deactivated', 'banned')
                  and v.from_status is distinct from v.to_status
                order by v.id
            ) ev
            where (select true from webhook_endpoints w
                   where outbox_endpoint_wants(w, ev.type, ev.program_id, ev.partner_ids) limit 1);
        elsif q.source = 'claims' then
            insert into outbox_events (type, program_id, partner_ids, data, created_at)
            select ev.type, ev.program_id, ev.partner_ids, ev.data, ev.created_at from (
                select 'claim.' || v.action as type, c.program_id, array[c.partner_id] as partner_ids,
                       jsonb_build_object('claim_id', c.id, 'program_id', c.program_id,
                                          'partner_id', c.partner_id, 'kind', c.kind,
                                          'order_id', c.order_id, 'commission_id', c.commission_id,
                                          'actor', v.actor, 'reason_code', v.reason_code,
                                          'note', v.note, 'deadline_at', c.deadline_at) as data,
                       q.queued_at as created_at
                from claim_events v join claims c on c.id = v.claim_id
                where v.id = any(q.ids)
                order by v.id
            ) ev
            where (select true from webhook_endpoints w
                   where outbox_endpoint_wants(w, ev.type, ev.program_id, ev.partner_ids) limit 1);
        end if;
        delete from outbox_queue where id = q.id;
        taken := taken + 1;
    end loop;
    return taken;
end;
$$;
