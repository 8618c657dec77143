-- The indexes that find a program's approved commissions, its commissions
-- held for review and its partners' approved balances hold only those rows,
-- so that booking a sale enters none of them.
--
-- `commissions_program_status` (program_id, status, partner_id) and
-- `ledger_balance` (program_id, partner_id, currency, bucket) took an entry
-- for every commission and every ledger entry, four of the about 30 index
-- entries a booked sale with two partners writes
-- (benches/conversions_load.sh with PG_STATS=1). Their only readers ask
-- for one status or one bucket: a payout reads the program's approved
-- commissions and the approved bucket's balances (src/commissions/payouts.rs),
-- the review queue its pending commissions held for review
-- (src/commissions/queries.rs). A new commission is pending and its
-- ledger entry goes to the pending bucket: neither enters an index below
-- until it is approved or held.
create index commissions_approved on commissions (program_id, id) where status = 'approved';
create index commissions_in_review on commissions (program_id, id)
    where status = 'pending' and review;
drop index commissions_program_status;

-- The balance is summed from the index alone (index-only scan).
create index ledger_approved on ledger_entries (program_id, partner_id, currency)
    include (amount_minor) where bucket = 'approved';
drop index ledger_balance;
