//! `aymara-mock`: the command line over the `aymara_mock` library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    // clap exits with 2 on bad flags, after printing what is wrong.
    aymara_mock::cli::run(aymara_mock::cli::Cli::parse())
}
