//! Soak (ignored by default; `.ci/run` runs it in release mode):
//! `cargo test --release --test soak -- --ignored --nocapture`.
//!
//! A test binary of its own, so that the release build CI needs for it does
//! not compile the whole `api` suite a second time.
//!
//! 10,000 uploads at concurrency 64 with sizes random in 0–1 MiB, each stored
//! file's sha256 checked and the journal exact; then 1,000 uploads cut at
//! random byte offsets: no file left, open descriptors back to the baseline,
//! memory back near it.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "a test that cannot go on should panic with the cause"
)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::Value;
use tokio::io::AsyncWriteExt;

#[path = "../api/helpers.rs"]
mod helpers;

use helpers::*;

/// Sends `method` to an admin route of the server at `url`.
async fn admin(
    client: &reqwest::Client,
    method: Method,
    url: &str,
    path: &str,
) -> reqwest::Response {
    client
        .request(method, format!("{url}{path}"))
        .send()
        .await
        .unwrap()
}

fn proc_status(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

#[test]
#[ignore = "soak: minutes of load; run by .ci/run in release mode"]
fn soak_ten_thousand_uploads_then_a_thousand_cut_ones() {
    let storage = tempfile::tempdir().unwrap();
    let bin = start_binary(
        &[
            "--storage-dir",
            storage.path().to_str().unwrap(),
            "--log-level",
            "warn",
            "--journal-size",
            "20000",
        ],
        &[],
    );
    let pid = bin.child.id();
    let url = bin.url.clone();
    let addr: std::net::SocketAddr = url.trim_start_matches("http://").parse().unwrap();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()
        .unwrap();

    // Warm up at full concurrency so that the allocator's arenas and the
    // runtime's threads exist, then clear everything and take the baseline:
    // "back near the baseline" then means nothing grows with the load.
    rt.block_on(upload_many(&client, &url, 1_000));
    rt.block_on(async {
        admin(&client, Method::DELETE, &url, "/__admin/uploads").await;
        admin(&client, Method::DELETE, &url, "/__admin/requests").await;
    });
    let (fd_base, rss_base) = (open_fds(pid), proc_status(pid, "VmRSS:"));

    let started = Instant::now();
    let expected = rt.block_on(upload_many(&client, &url, 10_000));
    let elapsed = started.elapsed();

    let (uploads, journal): (Value, Value) = rt.block_on(async {
        let uploads = admin(&client, Method::GET, &url, "/__admin/uploads").await;
        let journal = admin(&client, Method::GET, &url, "/__admin/requests").await;
        (uploads.json().await.unwrap(), journal.json().await.unwrap())
    });
    let stored: std::collections::HashMap<&str, (&str, u64)> = uploads["uploads"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            (
                u["file_uuid"].as_str().unwrap(),
                (u["sha256"].as_str().unwrap(), u["size"].as_u64().unwrap()),
            )
        })
        .collect();
    assert_eq!(stored.len(), 10_000);
    for (uuid, sha, size) in &expected {
        assert_eq!(
            stored.get(uuid.as_str()),
            Some(&(sha.as_str(), *size)),
            "{uuid}"
        );
    }
    let uploads_in_journal = journal["requests"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["path"] == "/v2/files/-/uploads" && r["status"] == 200)
        .count();
    assert_eq!(uploads_in_journal, 10_000);
    // Every stored file on disk is byte-exact (sampled: every 97th, read back).
    for (uuid, sha, _) in expected.iter().step_by(97) {
        let dir = storage.path().join(uuid);
        let file = std::fs::read_dir(&dir)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        assert_eq!(&sha256_hex(&std::fs::read(file).unwrap()), sha);
    }
    let rss_after_load = proc_status(pid, "VmRSS:");
    let hwm = proc_status(pid, "VmHWM:");

    // Clear storage, then 1,000 uploads cut at random offsets.
    rt.block_on(async {
        admin(&client, Method::DELETE, &url, "/__admin/uploads").await;
        let mut tasks = Vec::new();
        for i in 0..1_000u64 {
            tasks.push(tokio::spawn(async move {
                let content = data(64 * 1024 + (i as usize * 997) % (512 * 1024));
                let body = multipart_body("cut.bin", None, &content);
                let cut = 1 + (i.wrapping_mul(7_919) as usize % (body.len() - 1));
                let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
                stream
                    .write_all(upload_head(addr, body.len(), "").as_bytes())
                    .await
                    .unwrap();
                stream.write_all(&body[..cut]).await.unwrap();
                // Dropping the stream closes the socket mid-body.
            }));
            if tasks.len() == 64 {
                for t in tasks.drain(..) {
                    t.await.unwrap();
                }
            }
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let leftover = || files_under(storage.path());
    rt.block_on(admin(&client, Method::DELETE, &url, "/__admin/requests"));
    let settled = rt.block_on(eventually(Duration::from_secs(30), || {
        leftover().is_empty() && open_fds(pid) <= fd_base
    }));
    let fds_after = open_fds(pid);
    let rss_after_cuts = proc_status(pid, "VmRSS:");
    // Idle runtime threads exit after 10 s and take their memory with them:
    // give memory that long (polling) to come back near the baseline.
    let near_baseline = |rss: u64| rss <= rss_base + rss_base / 4 + 8 * 1024;
    let settle_started = Instant::now();
    rt.block_on(eventually(Duration::from_secs(20), || {
        near_baseline(proc_status(pid, "VmRSS:"))
    }));
    let settle_time = settle_started.elapsed();
    let rss_end = proc_status(pid, "VmRSS:");
    eprintln!(
        "soak: 10,000 uploads (0-1 MiB, concurrency 64) in {:.1} s ({:.0} uploads/s); \
         RSS baseline {rss_base} kB, after load {rss_after_load} kB, peak {hwm} kB, after 1,000 cut uploads {rss_after_cuts} kB, {rss_end} kB {:.1} s later; \
         fds baseline {fd_base}, after {fds_after}; files left {}",
        elapsed.as_secs_f64(),
        10_000.0 / elapsed.as_secs_f64(),
        settle_time.as_secs_f64(),
        leftover().len()
    );
    assert!(
        settled,
        "files left {:?}, fds {fds_after} vs {fd_base}",
        leftover()
    );
    assert!(
        near_baseline(rss_end),
        "RSS {rss_end} kB vs baseline {rss_base} kB"
    );
}

/// `count` uploads at concurrency 64, sizes spread over 0–1 MiB; returns
/// (file_uuid, sha256, size) of each.
async fn upload_many(
    client: &reqwest::Client,
    url: &str,
    count: u64,
) -> Vec<(String, String, u64)> {
    let limit = Arc::new(tokio::sync::Semaphore::new(64));
    let mut tasks = Vec::new();
    for i in 0..count {
        let permit = Arc::clone(&limit).acquire_owned().await.unwrap();
        let client = client.clone();
        let url = url.to_owned();
        tasks.push(tokio::spawn(async move {
            let size = (i.wrapping_mul(2_654_435_761) % (1 << 20)) as usize;
            let content = data(size);
            let form = reqwest::multipart::Form::new().part(
                "file",
                reqwest::multipart::Part::bytes(content.clone()).file_name(format!("f{i}.bin")),
            );
            let resp = client
                .post(format!("{url}/v2/files/-/uploads"))
                .header("x-api-key", "k")
                .multipart(form)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200);
            let answer: Value = resp.json().await.unwrap();
            drop(permit);
            (
                answer["file_uuid"].as_str().unwrap().to_owned(),
                sha256_hex(&content),
                size as u64,
            )
        }));
    }
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}
