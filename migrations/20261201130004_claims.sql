-- Claims: a partner asks about a sale that was never booked (untracked),
-- booked with the wrong amount (incorrect), or rejected or reversed
-- (declined); the program accepts or declines it, within a deadline it
-- sets, with a comment thread; every step is kept with who and when.

alter table programs
    -- Days a program has to answer a claim, and what happens past them.
    add column claim_deadline_days integer not null default 75
        check (claim_deadline_days between 1 and 365),
    add column claim_overdue_action text not null default 'accept'
        check (claim_overdue_action in ('accept', 'decline', 'none'));

-- A sale booked from an accepted claim says so.
alter table conversions drop constraint conversions_attributed_via_check;
alter table conversions add constraint conversions_attributed_via_check
    check (attributed_via in ('click', 'coupon', 'claim'));

create table claims (
    id bigint generated always as identity primary key,
    program_id bigint not null references programs (id),
    partner_id bigint not null references partners (id),
    kind text not null check (kind in ('untracked', 'incorrect', 'declined')),
    status text not null default 'open' check (status in ('open', 'accepted', 'declined')),
    -- untracked: the sale as the partner saw it.
    order_id text,
    occurred_at timestamptz,
    amount_minor bigint check (amount_minor >= 0),
    currency char(3) not null,
    agreement_id bigint references agreements (id),
    -- incorrect, declined: the commission disputed.
    commission_id bigint references commissions (id),
    expected_commission_minor bigint check (expected_commission_minor >= 0),
    note text,
    -- When the program must have answered, and what happens then.
    deadline_at timestamptz not null,
    overdue_action text not null,
    reason_code text,
    decision_note text,
    decided_by text,
    decided_at timestamptz,
    -- What accepting booked (untracked) or changed (incorrect, declined).
    conversion_id bigint references conversions (id),
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    check (kind <> 'untracked' or (order_id is not null and occurred_at is not null
                                   and amount_minor is not null)),
    check (kind = 'untracked' or commission_id is not null)
);
-- One open claim per order or commission and partner.
create unique index claims_open_order on claims (program_id, partner_id, order_id)
    where status = 'open' and kind = 'untracked';
create unique index claims_open_commission on claims (commission_id)
    where status = 'open' and commission_id is not null;
create index claims_queue on claims (program_id, status, id);
create index claims_partner on claims (partner_id, id);
create index claims_due on claims (deadline_at) where status = 'open';

-- The thread: every step, who and when.
create table claim_events (
    id bigint generated always as identity primary key,
    claim_id bigint not null references claims (id),
    action text not null check (action in ('opened', 'commented', 'accepted', 'declined')),
    -- "admin", the program's id, the partner's id, or "deadline".
    actor text not null,
    reason_code text,
    note text,
    created_at timestamptz not null default now()
);
create index claim_events_claim on claim_events (claim_id, id);
create trigger claim_events_append_only before update or delete on claim_events
    for each row execute function append_only();

-- claim.opened, .commented, .accepted, .declined: both sides are told.
create function outbox_claims() returns trigger language plpgsql as $$
begin
    insert into outbox_events (type, program_id, partner_ids, data)
    select 'claim.' || v.action, c.program_id, array[c.partner_id],
           jsonb_build_object('claim_id', c.id, 'program_id', c.program_id,
                              'partner_id', c.partner_id, 'kind', c.kind,
                              'order_id', c.order_id, 'commission_id', c.commission_id,
                              'actor', v.actor, 'reason_code', v.reason_code, 'note', v.note,
                              'deadline_at', c.deadline_at)
    from new_events v join claims c on c.id = v.claim_id;
    return null;
end;
$$;
create trigger outbox_claims after insert on claim_events
    referencing new table as new_events
    for each statement execute function outbox_claims();
