-- Another name a shop's platform gives an order. A refund that names the
-- order by it is stored under the order's own id, so it finds the sale.
--
-- Stripe, from API version 2025-03-31: a subscription's payment is
-- reported under its invoice (`invoice.paid`, or its Checkout Session),
-- but its refund (`charge.refunded`) names only the PaymentIntent, since
-- a Charge no longer names its invoice. The `invoice_payment.paid` event
-- ties the two: its PaymentIntent is an alias of the invoice.
create table order_aliases (
    program_id bigint not null,
    alias text not null,
    order_id text not null,
    created_at timestamptz not null default now(),
    primary key (program_id, alias)
);
