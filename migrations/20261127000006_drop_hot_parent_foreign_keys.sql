-- Foreign keys from the money path's busiest tables to their few, hot
-- parent rows (a program, its partners, agreements and links) made every
-- booked row take a FOR KEY SHARE lock on the same parent rows; with
-- several workers and webhooks at once those locks became multixacts, and
-- booking ran a third slower (benches/conversions_load.sh, attribution
-- alone: 5,900/s with them, 8,800/s without).
--
-- Programs, partners, agreements and links are never deleted (links are
-- disabled, agreements get new versions), and these ids are written only
-- after the parent was read, so the constraints guarded against nothing
-- that can happen. The keys that tie money rows to each other stay:
-- commission -> conversion, ledger entry -> commission and conversion,
-- payout references.
alter table conversions
    drop constraint conversions_program_id_fkey,
    drop constraint conversions_link_id_fkey,
    drop constraint conversions_agreement_id_fkey;
alter table commissions
    drop constraint commissions_program_id_fkey,
    drop constraint commissions_partner_id_fkey,
    drop constraint commissions_agreement_id_fkey;
alter table ledger_entries
    drop constraint ledger_entries_program_id_fkey,
    drop constraint ledger_entries_partner_id_fkey;
alter table conversion_days drop constraint conversion_days_program_id_fkey;
alter table partner_conversion_days
    drop constraint partner_conversion_days_program_id_fkey,
    drop constraint partner_conversion_days_partner_id_fkey;
