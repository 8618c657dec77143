-- Daily conversion roll-ups for reports, kept in the same transactions that
-- book, refund or reject, so they always agree with the commissions.
-- Day is the UTC date the conversion happened. link_id 0: attributed by
-- coupon, not by a link. Revenue and commission are net of refunds and
-- rejections.
create table conversion_days (
    program_id bigint not null references programs (id),
    link_id bigint not null,
    day date not null,
    conversions bigint not null default 0,
    revenue_minor bigint not null default 0,
    commission_minor bigint not null default 0,
    primary key (program_id, link_id, day)
);
create index conversion_days_day on conversion_days (program_id, day);

create table partner_conversion_days (
    program_id bigint not null references programs (id),
    partner_id bigint not null references partners (id),
    link_id bigint not null,
    day date not null,
    conversions bigint not null default 0,
    revenue_minor bigint not null default 0,
    commission_minor bigint not null default 0,
    primary key (partner_id, link_id, day, program_id)
);
create index partner_conversion_days_program on partner_conversion_days (program_id, day);
