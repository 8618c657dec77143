-- The portal: people who sign in with an e-mail and a password, each for one
-- tenant (a partner or a program), their sessions, and the one-time tokens
-- of invitations, password resets and sign-in links.

create table users (
    id bigint generated always as identity primary key,
    email text not null,
    -- argon2id, PHC string; null until the invitation is accepted (or for an
    -- account only ever reached through one-time sign-in links).
    password_hash text,
    -- Exactly one tenant: the partner or the program the person acts for.
    partner_id bigint references partners (id),
    program_id bigint references programs (id),
    -- `en` or `id`; null: from the browser's Accept-Language.
    locale text check (locale in ('en', 'id')),
    -- IANA time zone name dates are shown in.
    time_zone text not null default 'UTC',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    check ((partner_id is null) <> (program_id is null))
);
-- One account per address, whatever its case.
create unique index users_email on users (lower(email));
create index users_partner on users (partner_id) where partner_id is not null;
create index users_program on users (program_id) where program_id is not null;

-- One-time tokens, stored as sha-256: invitations (set a password), password
-- resets, and sign-in links for merchants who embed mitra.
create table user_tokens (
    token_hash bytea primary key,
    user_id bigint not null references users (id),
    purpose text not null check (purpose in ('invite', 'reset', 'login')),
    expires_at timestamptz not null,
    used_at timestamptz,
    created_at timestamptz not null default now()
);
create index user_tokens_user on user_tokens (user_id);

-- Server-side sessions: the cookie carries a random token, the row its
-- sha-256, so a database leak does not hand out sessions.
create table sessions (
    token_hash bytea primary key,
    user_id bigint not null references users (id),
    -- Every form of the session carries it (double protection with SameSite=Lax).
    csrf_token text not null,
    created_at timestamptz not null default now(),
    expires_at timestamptz not null
);
create index sessions_user on sessions (user_id);
create index sessions_expires on sessions (expires_at);
