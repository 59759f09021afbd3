//! The subcommands about fault rules: `check` (validate fixture files),
//! `schema` (their JSON Schema) and `scenarios` (the shipped ones).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use aymara_mock::{check_fixtures, Scenario, FIXTURE_SCHEMA};

/// `aymara-mock check PATH...`: a line per valid file on stdout, every error
/// on stderr as `path:line:column: message`, in file order; exit 2 if any.
pub(crate) fn check(paths: &[PathBuf]) -> ExitCode {
    let check = check_fixtures(paths);
    for err in &check.path_errors {
        eprintln!("{err}");
    }
    for (file, result) in &check.files {
        match result {
            Ok(rules) => println!("{}: ok ({rules} rules)", file.display()),
            Err(err) => eprintln!("{err}"),
        }
    }
    if let Some(err) = &check.across_files {
        eprintln!("{err}");
    }
    if check.is_valid() {
        println!(
            "{} files, {} rules: all valid",
            check.files.len(),
            check.rule_count()
        );
        ExitCode::SUCCESS
    } else {
        ExitCode::from(2)
    }
}

/// `aymara-mock schema`: the JSON Schema of fixture files, on stdout.
pub(crate) fn schema() -> ExitCode {
    println!("{}", FIXTURE_SCHEMA.trim_end());
    ExitCode::SUCCESS
}

/// `aymara-mock scenarios`: one line each, name then what it does.
pub(crate) fn list_scenarios() -> ExitCode {
    let width = Scenario::all()
        .iter()
        .map(|s| s.name().len())
        .max()
        .unwrap_or(0);
    let mut out = std::io::stdout().lock();
    for scenario in Scenario::all() {
        let _ = writeln!(out, "{:width$}  {}", scenario.name(), scenario.summary());
    }
    let _ = out.flush();
    ExitCode::SUCCESS
}
