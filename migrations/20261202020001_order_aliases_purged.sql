-- Order aliases are kept as long as mitra takes an event of the payment
-- they name (conversions::MAX_AGE_DAYS, 400 days), then purged oldest
-- first by the attribution workers' housekeeping, which finds them here.
create index if not exists order_aliases_created on order_aliases (created_at);
