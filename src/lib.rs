//! mitra: affiliate link tracking and commission service.
//!
//! Modules in layers; each imports only from its own layer or below
//! (`scripts/check-layers` checks it):
//! 0. `domain`: pure types and codecs, parsed at the edge.
//! 1. `config`, `telemetry`, `metrics`, `db`, `redis_client`, `background`:
//!    settings, the metrics registry, back-end clients, the worker loop.
//! 2. One module per aggregate, with its storage, core logic and the
//!    background work on its data: `programs`, `partners`, `agreements`,
//!    `enrollments`, `links`, `clicks`, `rollups`, `conversions`,
//!    `attribution`, `commissions`, `integrations` (platforms' own
//!    webhooks), `accounts` (portal users and sessions), `outbox` (outgoing
//!    webhooks), `claims`, `statements` (the ledger's chain, signed
//!    statements); and `health`.
//! 3. `http`: routes, middleware, authentication, errors, the OpenAPI document;
//!    `portal`: the partners' and merchants' pages, on the same core functions.
//! 4. `startup` (wiring), `demo`, `cli`.
#![forbid(unsafe_code)]

pub mod domain;

pub mod background;
pub mod config;
pub mod db;
pub mod metrics;
pub mod redis_client;
pub mod telemetry;

pub mod accounts;
pub mod agreements;
pub mod attribution;
pub mod claims;
pub mod clicks;
pub mod commissions;
pub mod conversions;
pub mod enrollments;
pub mod health;
pub mod integrations;
pub mod links;
pub mod outbox;
pub mod partners;
pub mod programs;
pub mod rollups;
pub mod statements;

pub mod http;
pub mod portal;

pub mod cli;
pub mod demo;
pub mod startup;
