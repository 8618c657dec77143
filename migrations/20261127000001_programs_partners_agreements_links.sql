-- Tenants, terms and links: everything the admin API creates.
-- Ids are bigint identities; the API shows them prefixed and base62-encoded.

create table programs (
    id bigint generated always as identity primary key,
    name text not null,
    currency char(3) not null,
    landing_domains text[] not null,
    default_url text not null,
    attribution_window_days integer not null check (attribution_window_days between 1 and 365),
    hold_days integer not null check (hold_days between 0 and 365),
    commission jsonb not null,
    -- sha-256 of the API key: keys carry 256 random bits, so a slow hash buys nothing.
    api_key_hash bytea not null unique,
    created_at timestamptz not null default now()
);

-- A program signs webhooks with one of these; during a rotation the old one
-- keeps verifying until it expires.
create table webhook_secrets (
    id bigint generated always as identity primary key,
    program_id bigint not null references programs (id),
    -- Kept in clear: an HMAC needs the secret itself. See README, "Secrets".
    secret text not null,
    created_at timestamptz not null default now(),
    expires_at timestamptz
);
create index webhook_secrets_program on webhook_secrets (program_id);

create table partners (
    id bigint generated always as identity primary key,
    name text not null,
    email text not null,
    api_key_hash bytea not null unique,
    created_at timestamptz not null default now()
);

create table agreements (
    id bigint generated always as identity primary key,
    program_id bigint not null references programs (id),
    current_version integer not null,
    created_at timestamptz not null default now()
);
create index agreements_program on agreements (program_id, id);

-- Terms are never edited: a change inserts version n+1.
create table agreement_versions (
    agreement_id bigint not null references agreements (id),
    version integer not null check (version >= 1),
    -- null: the program's commission rules apply; else these rules override
    -- the program's, event by event.
    commission jsonb,
    coupon_codes text[] not null,
    valid_from timestamptz,
    valid_until timestamptz,
    created_at timestamptz not null default now(),
    primary key (agreement_id, version),
    check (valid_until is null or valid_from is null or valid_from < valid_until)
);

create table agreement_partners (
    agreement_id bigint not null,
    version integer not null,
    partner_id bigint not null references partners (id),
    share_bps integer not null check (share_bps between 0 and 10000),
    primary key (agreement_id, version, partner_id),
    foreign key (agreement_id, version) references agreement_versions (agreement_id, version)
);
create index agreement_partners_partner on agreement_partners (partner_id, agreement_id);

-- The current owner of each coupon code; codes are unique per program,
-- compared upper-cased.
create table coupons (
    program_id bigint not null references programs (id),
    code text not null,
    agreement_id bigint not null references agreements (id),
    primary key (program_id, code)
);
create index coupons_agreement on coupons (agreement_id);

create table links (
    id bigint generated always as identity primary key,
    program_id bigint not null references programs (id),
    agreement_id bigint not null references agreements (id),
    -- The signed code as issued; it keeps working while its key id is listed.
    code text not null unique,
    destination_url text,
    sub_ids jsonb not null default '{}',
    created_by_partner_id bigint references partners (id),
    disabled_at timestamptz,
    created_at timestamptz not null default now()
);
create index links_program on links (program_id, id);
create index links_agreement on links (agreement_id, id);

-- Every version of every agreement with its partners and its program's rules:
-- the one place that assembles a version's full terms.
create view agreement_terms as
select
    a.id as agreement_id,
    a.program_id,
    a.current_version,
    v.version,
    v.commission,
    p.commission as program_commission,
    v.coupon_codes,
    v.valid_from,
    v.valid_until,
    v.created_at,
    array(select ap.partner_id from agreement_partners ap
          where ap.agreement_id = v.agreement_id and ap.version = v.version
          order by ap.partner_id) as partner_ids,
    array(select ap.share_bps from agreement_partners ap
          where ap.agreement_id = v.agreement_id and ap.version = v.version
          order by ap.partner_id) as share_bps
from agreements a
join agreement_versions v on v.agreement_id = a.id
join programs p on p.id = a.program_id;
