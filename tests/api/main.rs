//! API tests: one binary, one module per area.

mod cluster_harness;
mod helpers;

mod admin_api;
mod booking;
mod claims;
mod cli;
mod clicks;
mod conversions;
mod crash;
mod enrollments;
mod errors;
mod hardening;
mod health;
mod integrations;
mod lifecycle;
mod openapi;
mod portal;
mod read_replica;
mod receiver;
mod redirect;
mod redis_cluster;
mod reports;
mod rules;
mod rules_month;
mod scale_out;
mod snippet;
mod statements;
mod tenancy;
mod tracing;
mod webhooks;
