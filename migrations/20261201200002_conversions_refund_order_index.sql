-- An order's refunds found by an index of refunds alone.
--
-- `conversions_order` (program_id, order_id) indexed every conversion,
-- though its sales and leads are indexed by order already, in
-- `conversions_one_per_order` (program_id, order_id, event). Every sale
-- paid for it twice: on insert, and again on its outcome's update (which
-- writes a new row version into every index). The new index holds refunds
-- only, and a lookup of a whole order reads the two partial indexes
-- (conversions::by_order).
--
-- Not built concurrently: `create index concurrently` waits for every
-- transaction with an older snapshot, and a second process waiting for
-- the migration lock is one, waiting in turn for this one: a deadlock
-- (tried: three `mitra migrate` at once on a new database). The build
-- holds off new conversions while it reads the table; on a large one,
-- build it beforehand, concurrently, by hand, and this finds it there:
--   create index concurrently if not exists conversions_refund_order
--       on conversions (program_id, order_id) where event = 'refund';
create index if not exists conversions_refund_order
    on conversions (program_id, order_id) where event = 'refund';
drop index conversions_order;
