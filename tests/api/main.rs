//! One integration-test binary (faster to build than one per file).
//!
//! - `helpers`: `spawn_app()`, the test client, raw-socket helpers, the binary runner.
//! - `upload`: the emulated endpoint through the library: bytes, names, errors, limits.
//! - `cli`: the real binary: ready line, flags, env vars, signals.
//! - `cut_body`: bodies that end before their HTTP framing says: never stored.
//! - `files`: the files API: presigned PUTs, list, get, status, frames, delete.
//! - `faults`: fault rules, fixtures, phases, network faults, `Prefer`.
//! - `admin`: the admin API and the library's test-control methods.
//! - `cors`: web pages on other origins (`--cors-origin`): grants, preflights, the admin API refused.
//! - `robustness`: hostile and slow clients, full disks, connection limits.
//! - `fuzz`: property tests over mutated multipart bodies and rule JSON.
//! - `object_store`: uploads kept in an (in-memory) object store; S3 flags.
//! - `openapi`: `GET /openapi.json` matches what the server does.
//! - `routes`: one rule means the same on every route (`match.route`).
//! - `scenarios`: the shipped scenarios by name (CLI, builder, admin API).
//! - `why`: near misses, retries grouped into calls, `duplicate_of`, the live page.
//!
//! The soak test is its own binary, `tests/soak`.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test that cannot go on should panic with the cause"
)]

mod admin;
mod cli;
mod cors;
mod cut_body;
mod faults;
mod files;
mod fuzz;
mod hardening;
mod helpers;
mod object_store;
mod openapi;
mod robustness;
mod routes;
mod scenarios;
mod upload;
mod why;
