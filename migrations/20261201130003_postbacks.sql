-- Classic affiliate postbacks: a partner's URL template for one program,
-- fired (GET, macros filled in and URL-encoded) on the events it chooses,
-- through the same outbox, deliveries, retries and attempts as webhooks.

alter table webhook_endpoints
    add column kind text not null default 'webhook' check (kind in ('webhook', 'postback')),
    -- A postback: the program it fires for (its owner is the partner).
    add column scope_program_id bigint references programs (id),
    add check (kind = 'webhook' or (partner_id is not null and scope_program_id is not null));
