-- A payment platform's subscription a recurring payment belongs to (Stripe's
-- `sub_...`), so rules for recurring commissions can find a renewal's first
-- payment. `if not exists`: the recurring-rules work adds the same column,
-- and either may land first.
alter table conversions add column if not exists subscription_id text;
