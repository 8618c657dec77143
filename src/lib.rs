//! mitra: affiliate link tracking and commission service.
#![forbid(unsafe_code)]

pub mod agreements;
pub mod attribution;
pub mod auth;
pub mod cli;
pub mod clicks;
pub mod config;
pub mod conversions;
pub mod db;
pub mod demo;
pub mod domain;
pub mod earnings;
pub mod error;
pub mod ledger;
pub mod links;
pub mod metrics;
pub mod middleware;
pub mod openapi;
pub mod partners;
pub mod payouts;
pub mod programs;
pub mod redis_client;
pub mod reports;
pub mod routes;
pub mod signing;
pub mod startup;
pub mod state;
pub mod telemetry;

pub mod workers;
