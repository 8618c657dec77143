-- A partner's balances and statements sum its ledger entries (the portal's
-- dashboard and statement on every view). With the currency, bucket and
-- amount in the partner index itself, those sums can be answered from the
-- index alone (an index-only scan) instead of visiting the table's rows,
-- which for one partner are scattered among everyone's entries. It
-- replaces the index with the same key, so booking maintains no more
-- indexes than before.
create index ledger_partner_time_covering on ledger_entries (partner_id, created_at, id)
    include (currency, bucket, amount_minor);
drop index ledger_partner_time;
