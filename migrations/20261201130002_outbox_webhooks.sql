-- Outgoing webhooks: an outbox of events written in the same transaction as
-- the change each reports, endpoints that subscribe to them, and every
-- delivery attempt.
--
-- Events are written by triggers on the tables where status changes land
-- (conversions, ledger entries, payout items, enrollment moves), so every
-- path that changes a status, today's and tomorrow's, reports it in its own
-- transaction: an event exists exactly when its change committed. Payloads
-- keep row ids; the API shows them as public ids when it sends them.

create table outbox_events (
    id bigint generated always as identity primary key,
    type text not null,
    -- The program it happened in (none for a partner endpoint's test-fire).
    program_id bigint,
    -- The partners the event concerns: their endpoints receive it.
    partner_ids bigint[] not null default '{}',
    data jsonb not null,
    -- Only this endpoint receives it (a test-fire).
    endpoint_id bigint,
    -- Fanned out into deliveries.
    dispatched boolean not null default false,
    created_at timestamptz not null default now()
);
create index outbox_undispatched on outbox_events (id) where not dispatched;

create table webhook_endpoints (
    id bigint generated always as identity primary key,
    -- Exactly one owner: a program (its own events) or a partner (events
    -- that concern it, in every program).
    program_id bigint references programs (id),
    partner_id bigint references partners (id),
    url text not null,
    events text[] not null,
    secret text not null,
    enabled boolean not null default true,
    consecutive_failures integer not null default 0,
    disabled_at timestamptz,
    disabled_reason text,
    -- Deleted: receives nothing more; its deliveries stay readable.
    deleted_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    check ((program_id is null) <> (partner_id is null))
);
create index webhook_endpoints_program on webhook_endpoints (program_id) where program_id is not null;
create index webhook_endpoints_partner on webhook_endpoints (partner_id) where partner_id is not null;

create table webhook_deliveries (
    id bigint generated always as identity primary key,
    endpoint_id bigint not null references webhook_endpoints (id),
    event_id bigint not null references outbox_events (id),
    -- pending: to be attempted at next_attempt_at; succeeded; failed: given
    -- up after 3 days of retries.
    status text not null default 'pending' check (status in ('pending', 'succeeded', 'failed')),
    attempts integer not null default 0,
    next_attempt_at timestamptz not null default now(),
    -- A replay names the delivery it repeats.
    replay_of bigint references webhook_deliveries (id),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index webhook_deliveries_due on webhook_deliveries (next_attempt_at) where status = 'pending';
create index webhook_deliveries_endpoint on webhook_deliveries (endpoint_id, id);

-- Every attempt, kept.
create table webhook_attempts (
    id bigint generated always as identity primary key,
    delivery_id bigint not null references webhook_deliveries (id),
    attempted_at timestamptz not null default now(),
    duration_ms integer not null,
    response_status integer,
    -- Why it failed when no response came (timeout, refused, blocked address).
    error text
);
create index webhook_attempts_delivery on webhook_attempts (delivery_id, id);

-- conversion.received: every conversion stored.
create function outbox_conversions_received() returns trigger language plpgsql as $$
begin
    insert into outbox_events (type, program_id, data)
    select 'conversion.received', n.program_id,
           jsonb_build_object('conversion_id', n.id, 'program_id', n.program_id,
                              'order_id', n.order_id, 'event', n.event,
                              'amount_minor', n.amount_minor, 'currency', n.currency,
                              'occurred_at', n.occurred_at, 'status', n.status)
    from new_rows n;
    return null;
end;
$$;
create trigger outbox_conversions_received after insert on conversions
    referencing new table as new_rows
    for each statement execute function outbox_conversions_received();

-- conversion.attributed, .unattributed, .rejected: attribution's outcome.
create function outbox_conversions_processed() returns trigger language plpgsql as $$
begin
    insert into outbox_events (type, program_id, partner_ids, data)
    select 'conversion.' || n.status, n.program_id,
           coalesce((select array_agg(c.partner_id order by c.partner_id)
                     from commissions c where c.conversion_id = n.id), '{}'),
           jsonb_build_object('conversion_id', n.id, 'program_id', n.program_id,
                              'order_id', n.order_id, 'event', n.event,
                              'amount_minor', n.amount_minor, 'currency', n.currency,
                              'occurred_at', n.occurred_at, 'status', n.status,
                              'reason', n.reason, 'agreement_id', n.agreement_id,
                              'agreement_version', n.agreement_version, 'link_id', n.link_id)
    from new_rows n join old_rows o on o.id = n.id
    where n.status is distinct from o.status
      and n.status in ('attributed', 'unattributed', 'rejected')
      and n.event <> 'refund';
    return null;
end;
$$;
create trigger outbox_conversions_processed after update on conversions
    referencing old table as old_rows new table as new_rows
    for each statement execute function outbox_conversions_processed();

-- commission.created, .adjusted, .reversed, .approved, .rejected: the ledger
-- entries that change a commission (an approval is the entry into approved;
-- a refund of a paid commission, carried as a debt, is an adjustment).
create function outbox_ledger() returns trigger language plpgsql as $$
begin
    insert into outbox_events (type, program_id, partner_ids, data)
    select 'commission.' || case e.kind when 'carried' then 'adjusted' else e.kind end,
           e.program_id, array[e.partner_id],
           jsonb_build_object('commission_id', e.commission_id, 'program_id', e.program_id,
                              'partner_id', e.partner_id, 'conversion_id', c.conversion_id,
                              'order_id', v.order_id, 'event', v.event,
                              'agreement_id', c.agreement_id,
                              'agreement_version', c.agreement_version,
                              'change_minor', e.amount_minor, 'currency', e.currency,
                              'bucket', e.bucket, 'reason', e.reason, 'actor', e.actor,
                              'entry_id', e.id)
    from new_entries e
    left join commissions c on c.id = e.commission_id
    left join conversions v on v.id = c.conversion_id
    where e.commission_id is not null
      and (e.kind in ('created', 'adjusted', 'reversed', 'rejected', 'carried')
           or (e.kind = 'approved' and e.bucket = 'approved'));
    return null;
end;
$$;
create trigger outbox_ledger after insert on ledger_entries
    referencing new table as new_entries
    for each statement execute function outbox_ledger();

-- payout.paid: one per partner paid.
create function outbox_payouts() returns trigger language plpgsql as $$
begin
    insert into outbox_events (type, program_id, partner_ids, data)
    select 'payout.paid', p.program_id, array[i.partner_id],
           jsonb_build_object('payout_id', i.payout_id, 'program_id', p.program_id,
                              'partner_id', i.partner_id, 'amount_minor', i.amount_minor,
                              'currency', i.currency, 'commission_count', i.commission_count)
    from new_items i join payouts p on p.id = i.payout_id;
    return null;
end;
$$;
create trigger outbox_payouts after insert on payout_items
    referencing new table as new_items
    for each statement execute function outbox_payouts();

-- partner.enrolled and partner.deactivated: a membership becoming active,
-- or ending by deactivation or ban.
create function outbox_enrollments() returns trigger language plpgsql as $$
begin
    insert into outbox_events (type, program_id, partner_ids, data)
    select case when v.to_status = 'active' then 'partner.enrolled' else 'partner.deactivated' end,
           n.program_id, array[n.partner_id],
           jsonb_build_object('enrollment_id', n.id, 'program_id', n.program_id,
                              'partner_id', n.partner_id, 'status', v.to_status,
                              'reason_code', v.reason_code, 'actor', v.actor)
    from new_events v join enrollments n on n.id = v.enrollment_id
    where n.partner_id is not null
      and v.to_status in ('active', 'deactivated', 'banned')
      and v.from_status is distinct from v.to_status;
    return null;
end;
$$;
create trigger outbox_enrollments after insert on enrollment_events
    referencing new table as new_events
    for each statement execute function outbox_enrollments();
