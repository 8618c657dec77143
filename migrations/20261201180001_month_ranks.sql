-- A sale's rank in its agreement's month, reserved before it is booked.
--
-- The attribution worker used to hold the agreement-month row locked from
-- pricing to commit, so two workers with sales of one agreement booked one
-- after the other. Now a worker reserves its sales' ranks in a short
-- transaction of its own (lock the month rows, price, advance them, record
-- each sale's month state before it here, commit) and books in its main
-- transaction without the month lock. A worker that dies between the two
-- leaves its reservations: the retry prices each sale from its row here,
-- so a sale keeps its rank and the month counts it once. The booking
-- transaction deletes the rows of what it booked.
create table month_ranks (
    conversion_id bigint primary key references conversions (id),
    agreement_id bigint not null,
    month date not null,
    -- The agreement-month as it stood before this sale (agreement_months'
    -- columns).
    sales bigint not null,
    revenue_minor bigint not null,
    tier integer not null,
    rated_sales bigint not null,
    rated_base_minor bigint not null,
    rated_minor bigint not null,
    reserved_at timestamptz not null default now(),
    foreign key (agreement_id, month) references agreement_months (agreement_id, month)
);
