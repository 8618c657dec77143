//! API tests: one binary, one module per area.

mod helpers;

mod admin_api;
mod cli;
mod errors;
mod health;
mod tenancy;
