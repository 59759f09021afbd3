//! One integration-test binary (faster to build than one per file).
//!
//! - `helpers`: `spawn_app()`, the test client, raw-socket helpers, the binary runner.
//! - `upload`: the emulated endpoint through the library: bytes, names, errors, limits.
//! - `cli`: the real binary: ready line, flags, env vars, signals.
//! - `faults`: fault rules, fixtures, phases, network faults, `Prefer`.
//! - `admin`: the admin API and the library's test-control methods.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "a test that cannot go on should panic with the cause")]

mod admin;
mod cli;
mod faults;
mod fuzz;
mod helpers;
mod openapi;
mod robustness;
mod soak;
mod upload;
