-- Redirect caches poll for changed links and programs instead of trusting a
-- message bus: a disabled link stops redirecting on every instance within
-- the poll interval, even when Redis is down.
alter table links add column updated_at timestamptz not null default now();
create index links_updated_at on links (updated_at);
alter table programs add column updated_at timestamptz not null default now();
create index programs_updated_at on programs (updated_at);
alter table agreements add column updated_at timestamptz not null default now();
create index agreements_updated_at on agreements (updated_at);

-- Daily click roll-ups, written by the click worker in chunks with
-- "on conflict do update" additions. `clicks` excludes bot clicks.
-- Per link (program totals count each click once) ...
create table link_click_days (
    program_id bigint not null references programs (id),
    link_id bigint not null references links (id),
    day date not null,
    clicks bigint not null default 0,
    unique_clicks bigint not null default 0,
    bot_clicks bigint not null default 0,
    primary key (link_id, day)
);
create index link_click_days_program on link_click_days (program_id, day);

-- ... and per partner of the link's agreement at click time (each partner
-- of a joint agreement sees the click).
create table partner_click_days (
    program_id bigint not null references programs (id),
    partner_id bigint not null references partners (id),
    link_id bigint not null references links (id),
    day date not null,
    clicks bigint not null default 0,
    unique_clicks bigint not null default 0,
    bot_clicks bigint not null default 0,
    primary key (partner_id, link_id, day)
);
create index partner_click_days_program on partner_click_days (program_id, day);

-- First human click per (link, IP hash, UTC day): a click is unique when its
-- row is new. Kept in the same transaction as the roll-up, so a replayed
-- batch cannot count a click unique twice. Old days are purged.
create table click_uniques (
    link_id bigint not null,
    ip_hash text not null,
    day date not null,
    primary key (day, link_id, ip_hash)
);

-- Click stream entries already applied to the roll-ups: at-least-once
-- delivery from Redis becomes exactly-once here.
create table click_batches_applied (
    entry_id text primary key,
    applied_at timestamptz not null default now()
);
create index click_batches_applied_at on click_batches_applied (applied_at);

-- Clicks the worker flagged as bots or link previews, for attribution's
-- fraud checks (the click id itself cannot say what sent it).
create table flagged_clicks (
    click_id text primary key,
    link_id bigint not null,
    reason text not null,
    clicked_at timestamptz not null
);
create index flagged_clicks_clicked_at on flagged_clicks (clicked_at);
