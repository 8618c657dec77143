-- Verifiable statements: every ledger entry is chained per program, and each
-- program signs its partners' statements with an Ed25519 key.
--
-- The chain lives beside the ledger and is filled by the chainer worker, in
-- the order entries are committed; booking takes no lock for it. What booking
-- pays is one insert per statement into the queue below (a statement-level
-- trigger), so every path that appends to the ledger is chained, present and
-- future ones alike.

-- Entries committed but not chained yet.
create table ledger_unchained (
    entry_id bigint primary key,
    queued_at timestamptz not null default now()
);

create function ledger_queue_for_chain() returns trigger language plpgsql as $$
begin
    insert into ledger_unchained (entry_id) select id from new_entries;
    return null;
end;
$$;
create trigger ledger_chain_queue after insert on ledger_entries
    referencing new table as new_entries
    for each statement execute function ledger_queue_for_chain();

-- What was booked before the chain existed is chained first, in id order.
insert into ledger_unchained (entry_id) select id from ledger_entries;

-- One link per entry: its place in its program's chain (seq 1, 2, ...), the
-- SHA-256 of its canonical form (digest), and SHA-256(prev_hash || digest).
-- partner_id is copied from the entry so a partner's links are read by index.
create table ledger_chain (
    entry_id bigint primary key references ledger_entries (id),
    program_id bigint not null,
    partner_id bigint not null,
    seq bigint not null check (seq > 0),
    digest bytea not null,
    prev_hash bytea not null,
    hash bytea not null,
    chained_at timestamptz not null default now(),
    unique (program_id, seq)
);
create index ledger_chain_partner on ledger_chain (program_id, partner_id, seq);
create trigger ledger_chain_append_only before update or delete on ledger_chain
    for each row execute function ledger_is_append_only();

-- The last link of each program's chain.
create table ledger_chain_heads (
    program_id bigint primary key,
    seq bigint not null,
    hash bytea not null
);

-- The public half of each program's statement key, recorded when first used.
-- The private half is never stored: it is derived from MITRA_STATEMENT_KEY.
create table statement_keys (
    program_id bigint not null references programs (id),
    key_id integer not null,
    public_key bytea not null,
    created_at timestamptz not null default now(),
    primary key (program_id, key_id)
);
