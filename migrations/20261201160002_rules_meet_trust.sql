-- Where the commission rules (2026120114*) meet partner trust (2026120113*),
-- which were written side by side:
-- - a conversion may be attributed through a subscription's first payment
--   or through an accepted claim;
-- - the rules' ledger kinds reach partners' webhooks: a bonus is a
--   commission created, a tier adjustment a commission adjusted, and every
--   commission event says which kind of commission it is.

alter table conversions
    drop constraint conversions_attributed_via_check,
    add constraint conversions_attributed_via_check
        check (attributed_via in ('click', 'coupon', 'subscription', 'claim'));

create or replace function outbox_ledger() returns trigger language plpgsql as $$
begin
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


create or replace function outbox_expand(batches integer) returns integer language plpgsql as $$
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
            select 'commission.' || case e.kind when 'carried' then 'adjusted'
                                              when 'tier_adjustment' then 'adjusted'
                                              when 'bonus' then 'created'
                                              else e.kind end,
                   e.program_id, array[e.partner_id],
                   jsonb_build_object('commission_id', e.commission_id, 'program_id', e.program_id,
                                      'partner_id', e.partner_id, 'conversion_id', c.conversion_id,
                                      'order_id', v.order_id, 'event', v.event,
                                      'agreement_id', c.agreement_id,
                                      'agreement_version', c.agreement_version,
                                      'change_minor', e.amount_minor, 'currency', e.currency,
                                      'bucket', e.bucket, 'reason', e.reason, 'actor', e.actor,
                                      'entry_id', e.id, 'commission_kind', c.kind),
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
