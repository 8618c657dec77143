-- Enrollment: a partner is in a program only while its membership is
-- active. Agreements name only active partners, a program sees a partner's
-- contact details only while it is active, and only active partners' links
-- redirect and earn new commissions.

-- A program may list itself to partners, who then apply to it.
alter table programs
    add column public boolean not null default false,
    add column description text,
    -- After a rejection, a partner waits this long before applying again.
    add column reapply_cooldown_days integer not null default 30
        check (reapply_cooldown_days between 0 and 365);

-- One row per (program, partner): where the membership stands now. An
-- invitation by e-mail has no partner until someone accepts it.
create table enrollments (
    id bigint generated always as identity primary key,
    program_id bigint not null references programs (id),
    partner_id bigint references partners (id),
    -- The address an e-mail invitation went to.
    email text,
    status text not null check (status in
        ('invited', 'applied', 'active', 'declined', 'rejected', 'deactivated', 'banned')),
    -- sha-256 of the token in the invitation's accept_url; cleared once used.
    invite_token_hash bytea unique,
    -- What the partner wrote when applying.
    application_note text,
    -- The last decision's reason and note, shown to the partner.
    reason_code text,
    note text,
    reapply_after timestamptz,
    active_since timestamptz,
    -- When it was deactivated or banned: conversions before still earn.
    ended_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    check (partner_id is not null or email is not null)
);
create unique index enrollments_program_partner on enrollments (program_id, partner_id)
    where partner_id is not null;
create unique index enrollments_program_email on enrollments (program_id, lower(email))
    where partner_id is null;
create index enrollments_partner on enrollments (partner_id, id);
create index enrollments_program on enrollments (program_id, id);
-- The redirect caches poll for changed memberships, as for changed links.
create index enrollments_updated_at on enrollments (updated_at);

-- Rows that record history refuse changes, as ledger entries do.
create function append_only() returns trigger language plpgsql as $$
begin
    raise exception '% rows are never changed or deleted', tg_table_name;
end;
$$;

-- Every move, with who, when and why. Never changed.
create table enrollment_events (
    id bigint generated always as identity primary key,
    enrollment_id bigint not null references enrollments (id),
    action text not null,
    from_status text,
    to_status text not null,
    -- "admin", the program's id, the partner's id, or "migration".
    actor text not null,
    reason_code text,
    note text,
    created_at timestamptz not null default now()
);
create index enrollment_events_enrollment on enrollment_events (enrollment_id, id);

create trigger enrollment_events_append_only before update or delete on enrollment_events
    for each row execute function append_only();

-- Partners that an agreement gave a share to are members already. A partner
-- only ever named with a 0 bps share earned nothing and is not: that was how
-- a program could read any partner's contact details.
insert into enrollments (program_id, partner_id, status, active_since)
select a.program_id, ap.partner_id, 'active', min(v.created_at)
from agreement_partners ap
join agreements a on a.id = ap.agreement_id
join agreement_versions v on v.agreement_id = ap.agreement_id and v.version = ap.version
where ap.share_bps > 0
group by a.program_id, ap.partner_id;

insert into enrollment_events (enrollment_id, action, from_status, to_status, actor, note)
select id, 'accept', null, 'active', 'migration',
       'named with a share in an agreement before enrollments existed'
from enrollments;
