//! What an operator configures and runs, one test program: the `keel` command line
//! ([`cli`]), the admin HTTP API ([`admin`]), configuration reload ([`reload`]),
//! authentication ([`auth`], [`auth_methods`]) and authorisation ([`acl`]). The load generator
//! behind `keel-bench` is tested in its own crate (`loadgen/tests/`).

#[path = "../common/mod.rs"]
mod common;

mod acl;
mod admin;
mod auth;
mod auth_methods;
mod cli;
mod reload;
