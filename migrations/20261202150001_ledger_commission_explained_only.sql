-- The ledger's index by commission holds only the entries that explain a
-- change in words (those with a reason), the only ones looked up by
-- commission (`explanations` in src/commissions/queries.rs: the reasons
-- shown beside a partner's commissions). A booked commission's entry has
-- no reason, so booking a sale enters it no more: two index entries fewer
-- for a sale split between two partners.
create index ledger_explained on ledger_entries (commission_id) where reason is not null;
drop index ledger_commission;
