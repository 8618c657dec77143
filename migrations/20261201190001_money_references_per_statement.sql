-- The keys that tie money rows to each other, checked once per statement
-- instead of once per row.
--
-- A foreign key checks every inserted row on its own: an AFTER trigger
-- event per row, each running a query (a FOR KEY SHARE lookup of the
-- parent) with its own executor start. Booking one sale for two partners
-- ran eight of them (commission -> conversion twice, ledger entry ->
-- conversion and -> commission twice each) and chaining its entries two
-- more: with benches/conversions_load.sh (PG_STATS=1) 160,000 lookups for
-- 20,000 sales, and the trigger queue and executor starts around them a
-- fifth of Postgres's time.
--
-- The same guarantee, set-wise:
-- 1. A parent row is never deleted, truncated or given another id
--    (conversions, commissions; ledger entries were append-only already).
--    A foreign key's lock on the parent only stopped a delete racing the
--    insert that refers to it; with no delete, nothing needs the lock.
-- 2. Each insert statement checks all its rows' references at once, after
--    the statement (one index scan over the distinct ids it refers to),
--    and fails with the foreign key's SQLSTATE (23503), rolling back the
--    statement as the foreign key would.
-- 3. A referring column is never changed afterwards (commissions'
--    conversion_id; ledger entries and chain links are append-only).
-- Parents are written before the rows that refer to them, in the same
-- transaction or committed before it, so the check never waits for
-- another transaction's insert as a foreign key may.

create function refuse_deleting_money_rows() returns trigger language plpgsql as $$
begin
    raise exception '% rows are never deleted', tg_table_name
        using errcode = 'restrict_violation';
end;
$$;

create function refuse_changing_money_keys() returns trigger language plpgsql as $$
begin
    raise exception 'the key columns of % rows never change', tg_table_name
        using errcode = 'restrict_violation';
end;
$$;

create trigger conversions_never_deleted before delete or truncate on conversions
    for each statement execute function refuse_deleting_money_rows();
create trigger commissions_never_deleted before delete or truncate on commissions
    for each statement execute function refuse_deleting_money_rows();
create trigger ledger_entries_never_truncated before truncate on ledger_entries
    for each statement execute function refuse_deleting_money_rows();
create trigger ledger_chain_never_truncated before truncate on ledger_chain
    for each statement execute function refuse_deleting_money_rows();

create trigger conversions_id_never_changes before update of id on conversions
    for each row when (old.id is distinct from new.id)
    execute function refuse_changing_money_keys();
create trigger commissions_keys_never_change before update of id, conversion_id on commissions
    for each row when (old.id is distinct from new.id
                       or old.conversion_id is distinct from new.conversion_id)
    execute function refuse_changing_money_keys();

-- One check for every reference: the trigger's arguments name the
-- referring column and the parent table (whose key is `id`).
-- `id = any(array(...))` keeps it an index scan of the parent's primary
-- key whatever the planner guesses of a transition table's size (a hash
-- join would read the whole parent).
create function money_rows_refer_to_existing() returns trigger language plpgsql as $$
declare
    missing boolean;
begin
    execute format(
        'select (select count(distinct %1$I) from new_rows)
                <> (select count(*) from %2$I
                    where id = any(array(select %1$I from new_rows where %1$I is not null)))',
        tg_argv[0], tg_argv[1]) into missing;
    if missing then
        raise exception 'a row of % refers by % to a row of % that does not exist',
            tg_table_name, tg_argv[0], tg_argv[1]
            using errcode = 'foreign_key_violation';
    end if;
    return null;
end;
$$;

alter table commissions drop constraint commissions_conversion_id_fkey;
alter table ledger_entries
    drop constraint ledger_entries_conversion_id_fkey,
    drop constraint ledger_entries_commission_id_fkey;
alter table ledger_chain drop constraint ledger_chain_entry_id_fkey;

create trigger commissions_refer_to_conversions after insert on commissions
    referencing new table as new_rows for each statement
    execute function money_rows_refer_to_existing('conversion_id', 'conversions');
create trigger ledger_entries_refer_to_conversions after insert on ledger_entries
    referencing new table as new_rows for each statement
    execute function money_rows_refer_to_existing('conversion_id', 'conversions');
create trigger ledger_entries_refer_to_commissions after insert on ledger_entries
    referencing new table as new_rows for each statement
    execute function money_rows_refer_to_existing('commission_id', 'commissions');
create trigger ledger_chain_refers_to_entries after insert on ledger_chain
    referencing new table as new_rows for each statement
    execute function money_rows_refer_to_existing('entry_id', 'ledger_entries');
