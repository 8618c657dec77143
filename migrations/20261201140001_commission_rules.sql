-- Commission rules real programs use: versioned program terms, order lines
-- and subscriptions on conversions, commission kinds (milestone bonuses and
-- tier adjustments beside each conversion's commissions), and each
-- agreement's month-to-date tier state.

-- Program terms are versioned like agreements: a change inserts version
-- n+1. `programs` keeps the current version's values, so everything that
-- reads the current terms reads them as before.
create table program_versions (
    program_id bigint not null references programs (id),
    version integer not null check (version >= 1),
    commission jsonb not null,
    attribution_window_days integer not null check (attribution_window_days between 1 and 365),
    hold_days integer not null check (hold_days between 0 and 365),
    -- Who made it: "admin" or the program's id.
    actor text not null,
    created_at timestamptz not null default now(),
    primary key (program_id, version)
);
alter table programs add column terms_version integer not null default 1;
-- Until now terms could not change: every program is at version 1, and every
-- commission booked so far was computed under it.
insert into program_versions
    (program_id, version, commission, attribution_window_days, hold_days, actor, created_at)
select id, 1, commission, attribution_window_days, hold_days, 'admin', created_at from programs;

alter table conversions
    -- Order lines as the shop sent them ([{sku, category, amount_minor,
    -- quantity}], summing to amount_minor); a refund's lines name lines of its sale.
    add column items jsonb,
    -- Sales: a subscription's payments share it; the first one is attributed
    -- as any sale, the renewals through it.
    -- (`if not exists`: main's 20261201150001 adds the same column for the
    -- platforms, and a database may have either first.)
    add column if not exists subscription_id text,
    -- Sales: what refunds naming a line took back, by sku.
    add column refunded_items jsonb not null default '{}',
    -- The program terms version in force when it happened.
    add column program_version integer;
create index if not exists conversions_subscription on conversions (program_id, subscription_id, id)
    where subscription_id is not null and event = 'sale';
alter table conversions
    drop constraint conversions_attributed_via_check,
    add constraint conversions_attributed_via_check
        check (attributed_via in ('click', 'coupon', 'subscription'));

alter table commissions
    -- conversion: a sale's or lead's share; bonus: a milestone reached;
    -- tier_adjustment: the month's earlier sales raised to a tier reached.
    -- The last two name the sale that triggered them as their conversion.
    add column kind text not null default 'conversion'
        check (kind in ('conversion', 'bonus', 'tier_adjustment')),
    add column program_version integer not null default 1,
    -- Whose rule produced it: the agreement's own rule for the event, or the program's.
    add column rule_source text check (rule_source in ('program', 'agreement')),
    -- Bonuses and tier adjustments: the month and the milestone or step.
    add column period date,
    add column once_key text;
update commissions c
set rule_source = case when v.commission ? (c.rule ->> 'event') then 'agreement' else 'program' end
from agreement_versions v
where v.agreement_id = c.agreement_id and v.version = c.agreement_version;
update commissions set rule_source = 'program' where rule_source is null;
alter table commissions alter column rule_source set not null;
-- Still exactly once per partner per conversion for its commission, and now
-- once per milestone or step for the others; `period` makes a bonus or an
-- adjustment once per agreement, partner and month, whichever sale reaches it.
alter table commissions drop constraint commissions_conversion_id_partner_id_key;
create unique index commissions_once
    on commissions (conversion_id, partner_id, kind, coalesce(once_key, ''));
create unique index commissions_once_per_period
    on commissions (agreement_id, partner_id, period, once_key) where once_key is not null;

alter table ledger_entries
    drop constraint ledger_entries_kind_check,
    add constraint ledger_entries_kind_check check (kind in
        ('created', 'adjusted', 'reversed', 'approved', 'paid', 'rejected', 'carried', 'settled',
         'bonus', 'tier_adjustment'));

-- Each agreement's sales counted toward tiers and milestones, per calendar
-- month (UTC, as its first day), written in the transaction that books
-- them. The attribution worker locks a month's row while it prices the
-- month's sales, so two workers never give two sales the same rank.
create table agreement_months (
    agreement_id bigint not null,
    month date not null,
    sales bigint not null default 0,
    revenue_minor bigint not null default 0,
    -- The highest tier step a sale of the month earned at.
    tier integer not null default 0,
    -- For re-rating: the sales with a part at the default rate, that part's
    -- amount, and what it earned (adjustments included).
    rated_sales bigint not null default 0,
    rated_base_minor bigint not null default 0,
    rated_minor bigint not null default 0,
    primary key (agreement_id, month)
);
