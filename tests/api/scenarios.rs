//! The shipped scenarios by name: `aymara-mock scenarios`, `--scenario`
//! (and `AYMARA_MOCK_SCENARIO`), `MockServerBuilder::scenario`, and
//! `POST /__admin/scenarios/{name}`; their order with `--fixtures` and
//! `--watch`.

use std::process::Command;
use std::time::Duration;

use aymara_mock::Scenario;
use serde_json::{json, Value};

use crate::helpers::*;

/// The stems of the `*.json` files in the repository's `fixtures/<folder>/`.
fn shipped_files(folder: &str) -> Vec<String> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures")
        .join(folder);
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Uploads one small file with the blocking client; the status.
fn upload_status(url: &str) -> u16 {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let part = reqwest::multipart::Part::bytes(b"x".to_vec()).file_name("a.bin");
        reqwest::Client::new()
            .post(format!("{url}/v2/files/-/uploads"))
            .header("x-api-key", "k")
            .multipart(reqwest::multipart::Form::new().part("file", part))
            .send()
            .await
            .unwrap()
            .status()
            .as_u16()
    })
}

/// `GET /__admin/rules` of a binary: each rule's (id, source).
fn rule_sources(url: &str) -> Vec<(String, String)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let listed: Value = rt.block_on(async {
        reqwest::get(format!("{url}/__admin/rules"))
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    listed["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["id"].as_str().unwrap().to_owned(),
                r["source"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

#[test]
fn the_scenarios_command_lists_every_shipped_fixture_with_its_description() {
    let out = Command::new(bin_path()).arg("scenarios").output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let listing = String::from_utf8(out.stdout).unwrap();
    let mut files = shipped_files("scenarios");
    files.extend(shipped_files("errors"));
    assert_eq!(listing.lines().count(), files.len(), "{listing}");
    for name in files {
        let line = listing
            .lines()
            .find(|l| l.split_whitespace().next() == Some(name.as_str()))
            .unwrap_or_else(|| panic!("{name} not listed:\n{listing}"));
        let scenario = Scenario::named(&name).unwrap();
        assert!(line.ends_with(scenario.summary()), "{line}");
        assert!(line.len() > name.len() + 20, "no description: {line}");
    }
}

#[test]
fn an_unknown_scenario_exits_2_naming_the_existing_ones() {
    let by_flag = Command::new(bin_path())
        .args(["--port", "0", "--scenario", "nope"])
        .output()
        .unwrap();
    let by_env = Command::new(bin_path())
        .args(["--port", "0"])
        .env("AYMARA_MOCK_SCENARIO", "retry-then-succeed,nope")
        .output()
        .unwrap();
    for out in [by_flag, by_env] {
        assert_eq!(out.status.code(), Some(2));
        assert!(out.stdout.is_empty(), "it started");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("\"nope\""), "{err}");
        for scenario in Scenario::all() {
            assert!(err.contains(scenario.name()), "{err}");
        }
    }
    // A near miss is named first.
    let out = Command::new(bin_path())
        .args(["--scenario", "retry-then-suceed"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("did you mean \"retry-then-succeed\"?"),
        "{err}"
    );
}

#[test]
fn a_scenario_by_name_works_outside_the_clone_after_the_fixture_files() {
    // A folder with no fixtures/ in it: the scenario comes from the binary.
    let elsewhere = tempfile::tempdir().unwrap();
    let own = elsewhere.path().join("own.json");
    std::fs::write(
        &own,
        r#"{"rules": [{"id": "own-418", "match": {"filename": "*.teapot"}, "respond": {"status": 418}}]}"#,
    )
    .unwrap();
    let mut cmd_args = vec!["--scenario", "retry-then-succeed"];
    let own_arg = own.to_str().unwrap().to_owned();
    cmd_args.extend(["--fixtures", &own_arg]);
    let bin = start_binary_in(elsewhere.path(), &cmd_args, &[]);
    // --fixtures files first, then the scenarios, whatever the flags' order.
    assert_eq!(
        rule_sources(&bin.url),
        [
            ("own-418".to_owned(), own_arg.clone()),
            (
                "retry-then-succeed".to_owned(),
                "scenario:retry-then-succeed".to_owned()
            ),
        ]
    );
    let statuses: Vec<u16> = (0..3).map(|_| upload_status(&bin.url)).collect();
    assert_eq!(statuses, [503, 503, 200]);
    drop(bin);

    // The env twin, comma-separated, in its order.
    let bin = start_binary_in(
        elsewhere.path(),
        &[],
        &[(
            "AYMARA_MOCK_SCENARIO",
            "429-rate-limited,retry-then-succeed",
        )],
    );
    let ids: Vec<String> = rule_sources(&bin.url)
        .into_iter()
        .map(|(id, _)| id)
        .collect();
    assert_eq!(ids, ["error-429-rate-limited", "retry-then-succeed"]);
    assert_eq!(upload_status(&bin.url), 429);
}

#[test]
fn a_missing_fixture_path_names_the_scenarios() {
    let elsewhere = tempfile::tempdir().unwrap();
    let out = Command::new(bin_path())
        .args([
            "--port",
            "0",
            "--fixtures",
            "fixtures/scenarios/retry-then-succeed.json",
        ])
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--scenario retry-then-succeed"), "{err}");
    let out = Command::new(bin_path())
        .args(["check", "my-rules.json"])
        .current_dir(elsewhere.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--scenario NAME"), "{err}");
    for scenario in Scenario::all() {
        assert!(err.contains(scenario.name()), "{err}");
    }
}

#[tokio::test]
async fn the_admin_api_switches_a_scenario_on_until_reset() {
    let app = spawn_app().await;
    let listed: Value = app
        .call(reqwest::Method::GET, "/__admin/scenarios")
        .await
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = listed["scenarios"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), Scenario::all().len());
    assert!(names.contains(&"retry-then-succeed"), "{listed}");
    assert!(listed["scenarios"][0]["description"]
        .as_str()
        .is_some_and(|d| d.len() > 20));

    let on = app
        .call(
            reqwest::Method::POST,
            "/__admin/scenarios/retry-then-succeed",
        )
        .await;
    assert_eq!(on.status().as_u16(), 201);
    let on: Value = on.json().await.unwrap();
    assert_eq!(on, json!({"ids": ["retry-then-succeed"]}));
    let rules = app.server.rules().await;
    assert_eq!(rules[0].source, "scenario:retry-then-succeed");

    // Twice: its ids are taken.
    let again = app
        .call(
            reqwest::Method::POST,
            "/__admin/scenarios/retry-then-succeed",
        )
        .await;
    assert_eq!(again.status().as_u16(), 409);

    let unknown = app
        .call(
            reqwest::Method::POST,
            "/__admin/scenarios/retry-then-suceed",
        )
        .await;
    assert_eq!(unknown.status().as_u16(), 404);
    let unknown: Value = unknown.json().await.unwrap();
    assert_eq!(
        unknown["error"]["details"]["known"][0], "retry-then-succeed",
        "{unknown}"
    );

    assert_eq!(app.upload(data(4), "a.bin").await.status().as_u16(), 503);
    // A reset switches it off.
    let reset = app.call(reqwest::Method::POST, "/__admin/reset").await;
    assert_eq!(reset.status().as_u16(), 200);
    assert!(app.server.rules().await.is_empty());
    assert_eq!(app.upload(data(4), "a.bin").await.status().as_u16(), 200);
}

#[tokio::test]
async fn the_builder_keeps_the_order_added_and_watch_reloads_around_a_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("rules.json");
    let write = |status: u16| {
        let text = json!({"rules": [{"id": "mine", "respond": {"status": status}}]});
        std::fs::write(&path, text.to_string()).unwrap();
    };
    write(418);
    let app = spawn_with(|b| {
        b.scenario("slow-upload")
            .unwrap()
            .fixtures(&path)
            .unwrap()
            .watch(true)
    })
    .await;
    let ids = |rules: Vec<aymara_mock::RuleStatus>| -> Vec<String> {
        rules.into_iter().map(|r| r.id).collect()
    };
    assert_eq!(ids(app.server.rules().await), ["slow-upload", "mine"]);
    write(409);
    let reloaded = {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        loop {
            let rules = app.server.rules().await;
            let mine = rules.get(1).map(|r| serde_json::to_value(&r.rule).unwrap());
            if mine.is_some_and(|r| r["respond"]["status"] == 409) {
                break true;
            }
            if tokio::time::Instant::now() >= deadline {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    assert!(reloaded, "not reloaded within 2 s");
    // The scenario kept its place, before the file's rule.
    assert_eq!(ids(app.server.rules().await), ["slow-upload", "mine"]);
}
