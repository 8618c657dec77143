-- How long after a sale a partner may claim it (untracked) or dispute its
-- commission (incorrect, declined): null takes claims of any sale mitra
-- accepts (from 400 days back), as before.
alter table programs
    add column if not exists claim_window_days integer
        check (claim_window_days between 1 and 400);
