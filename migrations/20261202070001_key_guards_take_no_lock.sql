-- The guards that keep money rows' keys from changing run after the row is
-- updated instead of before, so that they no longer lock every updated
-- row.
--
-- A table with any BEFORE ROW UPDATE trigger makes Postgres lock each row
-- an UPDATE touches before it calls the trigger (it hands the trigger the
-- row as locked), whatever the trigger's column list and WHEN clause then
-- decide. So the outcome a worker writes on each conversion first wrote a
-- tuple-lock WAL record (`Heap/LOCK`, one per booked sale in
-- benches/conversions_load.sh with PG_STATS=1) for a guard that never
-- fires. An AFTER ROW trigger's column list and WHEN clause are checked
-- on the old and new rows the UPDATE already holds: no lock, and nothing
-- queued unless a key changed. A key that changes still fails the
-- statement, with the same SQLSTATE, before the transaction can commit.

drop trigger conversions_id_never_changes on conversions;
create trigger conversions_id_never_changes after update of id on conversions
    for each row when (old.id is distinct from new.id)
    execute function refuse_changing_money_keys();

drop trigger commissions_keys_never_change on commissions;
create trigger commissions_keys_never_change after update of id, conversion_id on commissions
    for each row when (old.id is distinct from new.id
                       or old.conversion_id is distinct from new.conversion_id)
    execute function refuse_changing_money_keys();
