-- no-transaction
-- Sales and leads are found by order through `conversions_one_per_order`,
-- refunds through `conversions_refund_order` (the migration before): the
-- index of every conversion by order goes, concurrently.
drop index concurrently if exists conversions_order;
