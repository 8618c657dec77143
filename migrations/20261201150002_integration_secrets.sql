-- The secret each platform signs a program's webhooks with: Shopify's app or
-- webhook secret, WooCommerce's webhook secret, Stripe's endpoint secret.
-- Like webhook_secrets, setting a new one lets the previous one expire after
-- a grace period, so a rotation at the platform loses no webhook.
create table integration_secrets (
    id bigint generated always as identity primary key,
    program_id bigint not null references programs (id),
    platform text not null check (platform in ('shopify', 'woocommerce', 'stripe')),
    secret text not null,
    created_at timestamptz not null default now(),
    expires_at timestamptz
);
create index integration_secrets_program on integration_secrets (program_id, platform);
