-- Balance checkpoints: a partner's bucket sums as of an instant, so a
-- balance reads the latest checkpoint plus the entries after it instead of
-- the partner's whole ledger (which grows without bound). The ledger stays
-- the truth; a checkpoint is derived from it and can be dropped and taken
-- again at any time.
--
-- A run at `through` covers every entry created before it, for every
-- partner: a partner without rows in a run had no entries before it.
create table ledger_checkpoint_runs (
    through timestamptz primary key,
    taken_at timestamptz not null default now()
);

create table ledger_checkpoints (
    through timestamptz not null references ledger_checkpoint_runs (through) on delete cascade,
    partner_id bigint not null references partners (id),
    currency char(3) not null,
    pending_minor bigint not null,
    approved_minor bigint not null,
    paid_minor bigint not null,
    primary key (partner_id, through, currency)
);
create index ledger_checkpoints_through on ledger_checkpoints (through);

-- A checkpoint sums the entries created since the previous one: a range of
-- created_at over the whole ledger. Entries are appended in roughly
-- created_at order, which a BRIN index serves for almost nothing on insert.
create index ledger_created_brin on ledger_entries using brin (created_at);
