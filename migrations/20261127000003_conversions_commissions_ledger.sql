-- The money path: conversions posted by shops, the commissions booked from
-- them, and the append-only ledger every balance is summed from.

create table conversions (
    id bigint generated always as identity primary key,
    program_id bigint not null references programs (id),
    -- event_id when the shop sends one, else order id and event: a repeat of
    -- the same key is the same conversion.
    idempotency_key text not null,
    event_id text,
    order_id text not null,
    event text not null check (event in ('sale', 'lead', 'refund')),
    amount_minor bigint not null check (amount_minor >= 0),
    currency char(3) not null,
    click_id text,
    coupon text,
    occurred_at timestamptz not null,
    received_at timestamptz not null default now(),
    -- received: waiting for the attribution worker; waiting: a refund whose
    -- sale has not arrived (yet); then attributed, unattributed or rejected.
    status text not null default 'received'
        check (status in ('received', 'waiting', 'attributed', 'unattributed', 'rejected')),
    reason text,
    fraud_reasons text[] not null default '{}',
    attributed_via text check (attributed_via in ('click', 'coupon')),
    link_id bigint references links (id),
    clicked_at timestamptz,
    agreement_id bigint references agreements (id),
    agreement_version integer,
    -- Sales: the part of the amount refunds have taken back so far.
    refunded_minor bigint not null default 0,
    -- Refunds: the sale they were applied to.
    sale_id bigint references conversions (id),
    processed_at timestamptz,
    unique (program_id, idempotency_key)
);
-- One sale and one lead per order: a second one with another event_id is a
-- conflict, not a second booking.
create unique index conversions_one_per_order on conversions (program_id, order_id, event)
    where event in ('sale', 'lead');
create index conversions_to_attribute on conversions (id) where status = 'received';
create index conversions_waiting on conversions (program_id, order_id) where status = 'waiting';
create index conversions_order on conversions (program_id, order_id);
create index conversions_click on conversions (click_id) where click_id is not null;
create index conversions_program_time on conversions (program_id, occurred_at);

create table commissions (
    id bigint generated always as identity primary key,
    conversion_id bigint not null references conversions (id),
    program_id bigint not null references programs (id),
    partner_id bigint not null references partners (id),
    agreement_id bigint not null references agreements (id),
    agreement_version integer not null,
    -- The rule that produced the amount, as it was, and what it applied to,
    -- so a partner can recompute it.
    rule jsonb not null,
    base_minor bigint not null,
    total_minor bigint not null,
    share_bps integer not null,
    original_minor bigint not null check (original_minor >= 0),
    -- Net of refunds.
    amount_minor bigint not null check (amount_minor >= 0),
    currency char(3) not null,
    status text not null check (status in ('pending', 'approved', 'paid', 'reversed')),
    -- Suspected fraud: held for a person to approve or reject.
    review boolean not null default false,
    fraud_reasons text[] not null default '{}',
    approve_after timestamptz not null,
    payout_id bigint,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    -- Exactly once per partner per conversion, whatever the workers do.
    unique (conversion_id, partner_id)
);
create index commissions_partner on commissions (partner_id, id);
create index commissions_program_status on commissions (program_id, status, partner_id);
create index commissions_due on commissions (approve_after) where status = 'pending' and not review;

-- Append-only: every change to a commission is an entry here, and every
-- balance is a sum of entries. `bucket` is the status the amount sits in;
-- a status change is a pair of entries (out of one bucket, into the next).
create table ledger_entries (
    id bigint generated always as identity primary key,
    commission_id bigint references commissions (id),
    program_id bigint not null references programs (id),
    partner_id bigint not null references partners (id),
    currency char(3) not null,
    bucket text not null check (bucket in ('pending', 'approved', 'paid')),
    amount_minor bigint not null,
    kind text not null check (kind in
        ('created', 'adjusted', 'reversed', 'approved', 'paid', 'rejected', 'carried', 'settled')),
    conversion_id bigint references conversions (id),
    payout_id bigint,
    -- Who: "worker", "admin", or the program's id.
    actor text not null,
    reason text,
    created_at timestamptz not null default now()
);
create index ledger_partner_time on ledger_entries (partner_id, created_at, id);
create index ledger_balance on ledger_entries (program_id, partner_id, currency, bucket);
create index ledger_commission on ledger_entries (commission_id);

create function ledger_is_append_only() returns trigger language plpgsql as $$
begin
    raise exception 'ledger entries are never changed or deleted';
end;
$$;
create trigger ledger_append_only before update or delete on ledger_entries
    for each row execute function ledger_is_append_only();

create table payouts (
    id bigint generated always as identity primary key,
    program_id bigint not null references programs (id),
    min_amount_minor bigint not null,
    actor text not null,
    created_at timestamptz not null default now()
);
create index payouts_program on payouts (program_id, id);

create table payout_items (
    payout_id bigint not null references payouts (id),
    partner_id bigint not null references partners (id),
    currency char(3) not null,
    amount_minor bigint not null,
    commission_count integer not null,
    primary key (payout_id, partner_id, currency)
);

alter table commissions add foreign key (payout_id) references payouts (id);
alter table ledger_entries add foreign key (payout_id) references payouts (id);
