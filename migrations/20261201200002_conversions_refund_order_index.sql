-- no-transaction
-- An order's refunds found by an index of refunds alone.
--
-- `conversions_order` (program_id, order_id) indexed every conversion,
-- though its sales and leads are indexed by order already, in
-- `conversions_one_per_order` (program_id, order_id, event). Every sale
-- paid for it twice: on insert, and again on its outcome's update (which
-- writes a new row version into every index). This index holds refunds
-- only; the next migration drops `conversions_order`, and a lookup of a
-- whole order reads the two partial indexes (conversions::by_order).
--
-- Built concurrently (one statement, outside a transaction), so shops'
-- webhooks keep being written meanwhile on a large table.
create index concurrently if not exists conversions_refund_order
    on conversions (program_id, order_id) where event = 'refund';
