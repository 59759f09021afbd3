//! Soak (ignored by default; `.ci/run` runs it in release mode):
//! `cargo test --release --test soak -- --ignored --nocapture --test-threads=1` (one at a time:
//! each times `/health` under its own load).
//!
//! A test binary of its own, so that the release build CI needs for it does
//! not compile the whole `api` suite a second time.
//!
//! 10,000 uploads at concurrency 64 with sizes random in 0–1 MiB, each stored
//! file's sha256 checked and the journal exact; then 1,000 uploads cut at
//! random byte offsets: no file left, open descriptors back to the baseline,
//! memory back near it.
//!
//! A second test posts 100k rules, a crafted glob against a 180 KB header
//! and fills the journal with 190 KB-header requests, while `/health` is
//! timed (p99 under 50 ms) and peak RSS bounded.
//!
//! A third aims the files API's hostile cases at it (issue 28): 50 x 1,000
//! fetches of a black hole, 100 fetches of itself, 10 clients listing 100k
//! announced files, 500 PUT/DELETE races; `/health` p99 <= 50 ms and max
//! <= 200 ms throughout, descriptors back to the baseline, peak RSS bounded.
//! Its load generators run at nice 10 (the server and the probe do not), and
//! a probe that a stall of the whole machine explains is reported, not
//! counted in the max (`watch_hiccups`).

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
            let status = resp.status();
            let text = resp.text().await.unwrap();
            assert_eq!(status, 200, "upload {i} of {size} bytes: {text}");
            let answer: Value = serde_json::from_str(&text).unwrap();
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

/// `count` requests built by `request`, at most `concurrency` at a time;
/// each must answer `status`, or 431 from hyper (a head over its 128 KiB
/// buffer is refused or not depending on how it arrives in reads). Returns
/// how many got 431.
async fn send_many(
    count: usize,
    concurrency: usize,
    status: u16,
    request: impl Fn(usize) -> reqwest::RequestBuilder,
) -> usize {
    let limit = Arc::new(tokio::sync::Semaphore::new(concurrency));
    let mut tasks = Vec::new();
    for i in 0..count {
        let permit = Arc::clone(&limit).acquire_owned().await.unwrap();
        let req = request(i);
        tasks.push(tokio::spawn(async move {
            let resp = req.send().await.unwrap();
            let got = resp.status().as_u16();
            assert!(got == status || got == 431, "{got}");
            resp.bytes().await.unwrap();
            drop(permit);
            got == 431
        }));
    }
    let mut refused = 0;
    for t in tasks {
        refused += usize::from(t.await.unwrap());
    }
    refused
}

#[test]
#[ignore = "soak: hostile admin and journal load; run by .ci/run in release mode"]
fn health_stays_fast_under_100k_rules_a_crafted_glob_and_a_full_journal() {
    let bin = start_binary(&["--log-level", "warn"], &[]);
    let pid = bin.child.id();
    let url = bin.url.clone();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(32)
        .build()
        .unwrap();
    let rss_base = proc_status(pid, "VmRSS:");
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let probe = probe_health_at(url.clone(), Arc::clone(&stop), Instant::now());
    let mut phases = Vec::new();

    // 100k rules in one POST (2.7 MB; ids generated). Each matches uploads,
    // and every request is tested against all of them.
    let started = Instant::now();
    let rules = vec![r#"{"respond":{"status":500}}"#; 100_000].join(",");
    let resp = rt.block_on(
        client
            .post(format!("{url}/__admin/rules"))
            .header("content-type", "application/json")
            .body(format!(r#"{{"rules":[{rules}]}}"#))
            .send(),
    );
    assert_eq!(resp.unwrap().status(), 201);
    phases.push(("100k rules posted", started.elapsed()));

    // Crafted globs, tried first (newest), against a 180 KB header of `a`s.
    let started = Instant::now();
    let crafted = format!(
        r#"{{"rules":[
            {{"match":{{"headers":{{"x-h":"*a*a*a*a*a*a*a*a*a*a*b"}}}},"respond":{{"status":418}}}},
            {{"match":{{"headers":{{"x-h":"*{}b"}}}},"respond":{{"status":418}}}}
        ]}}"#,
        "a".repeat(1_000)
    );
    let resp = rt.block_on(
        client
            .post(format!("{url}/__admin/rules"))
            .header("content-type", "application/json")
            .body(crafted)
            .send(),
    );
    assert_eq!(resp.unwrap().status(), 201);
    let header = "a".repeat(180_000);
    // The crafted globs do not match; the newest of the 100k rules answers 500.
    let refused_uploads = rt.block_on(send_many(500, 8, 500, |_| {
        client
            .post(format!("{url}/v2/files/-/uploads"))
            .header("x-api-key", "k")
            .header("x-h", &header)
    }));
    phases.push(("500 uploads with a crafted-glob header", started.elapsed()));

    // Fill the journal with requests carrying 190 KB of headers.
    let started = Instant::now();
    let header = "h".repeat(190_000);
    let refused_health = rt.block_on(send_many(10_000, 16, 200, |_| {
        client.get(format!("{url}/health")).header("x-h", &header)
    }));
    phases.push(("10,000 /health with 190 KB headers", started.elapsed()));
    let rss_full = proc_status(pid, "VmRSS:");

    let started = Instant::now();
    let journal: Value = rt.block_on(async {
        client
            .get(format!("{url}/__admin/requests"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    phases.push(("journal listed", started.elapsed()));
    let started = Instant::now();
    let listed = rt.block_on(async {
        let resp = client
            .get(format!("{url}/__admin/rules"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.bytes().await.unwrap().len()
    });
    phases.push(("100k rules listed", started.elapsed()));
    assert!(listed > 100_000 * 20, "{listed} bytes of rules");
    let journaled = journal["requests"].as_array().unwrap().len();
    drop(journal);

    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let mut times: Vec<Duration> = probe.join().unwrap().into_iter().map(|(_, t)| t).collect();
    times.sort();
    let p99 = times[times.len() * 99 / 100];
    let max = *times.last().unwrap();
    let hwm = proc_status(pid, "VmHWM:");
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let phases: Vec<String> = phases
        .iter()
        .map(|(name, d)| format!("{name} {:.1} s", d.as_secs_f64()))
        .collect();
    eprintln!(
        "soak (hostile): {}; /health probed {} times: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; \
         431 from hyper: {refused_uploads} of 500 uploads, {refused_health} of 10,000 /health; \
         journal kept {journaled} of 10,000; RSS baseline {rss_base} kB, with the journal full {rss_full} kB, peak {hwm} kB",
        phases.join(", "),
        times.len(),
        ms(times[times.len() / 2]),
        ms(p99),
        ms(max),
    );
    assert!(times.len() > 100, "only {} probes", times.len());
    assert!(ms(p99) < 50.0, "/health p99 {:.1} ms", ms(p99));
    // The worst single probe is scheduling noise on a shared 2-core VM as
    // often as ours (79 ms seen while other builds ran); a stall of the accept
    // loop behind a scan of 100k rules or the full journal would take seconds.
    assert!(ms(max) < 500.0, "/health max {:.1} ms", ms(max));
    // 64 MiB of journal, 100k rules and the request buffers: well under the
    // ~2 GB the journal alone reached before it had a byte bound.
    assert!(hwm < 400 * 1024, "peak RSS {hwm} kB");
    // 64 MiB of entries of ~18.8 KB each: the journal's copy of x-h (cut at
    // 8 KiB), and the near misses' own copy of it (two rules name x-h), the
    // struct and the room kept for three near misses.
    assert!(
        (3_000..10_000).contains(&journaled),
        "{journaled} requests journaled"
    );
}

/// Lowers the calling thread's scheduling priority to nice 10 (on Linux the
/// nice value is a thread's own). The files soak's load generators run so: on
/// a 2-core machine they share the CPUs with the server they load, and at the
/// server's priority their own work (building and parsing 1,000-entry bodies)
/// would be timed as the server's latency. The server and the probes keep the
/// default priority, as they would on hosts of their own.
#[allow(unsafe_code, reason = "setpriority(2) has no wrapper in std")]
fn lower_this_threads_priority() {
    // SAFETY: setpriority takes plain integers and touches no memory of ours.
    let rc = unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, 10) };
    assert_eq!(rc, 0, "setpriority: {}", std::io::Error::last_os_error());
}

/// Stalls of the machine itself, seen by a thread that only sleeps 1 ms at a
/// time (as jHiccup does): each oversleep of 50 ms or more, with when it
/// began (since `t0`), until `stop` is set. A VM's steal time stalls every
/// thread at once; a busy server does not delay a sleeper of another process
/// at the default priority (the scheduler favours sleepers).
fn watch_hiccups(
    stop: Arc<std::sync::atomic::AtomicBool>,
    t0: Instant,
) -> std::thread::JoinHandle<Vec<(Duration, Duration)>> {
    std::thread::spawn(move || {
        let mut hiccups = Vec::new();
        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
            let started = Instant::now();
            std::thread::sleep(Duration::from_millis(1));
            let over = started.elapsed().saturating_sub(Duration::from_millis(1));
            if over >= Duration::from_millis(50) {
                hiccups.push((started - t0, over));
            }
        }
        hiccups
    })
}

/// Latencies of `/health`, asked every 5 ms on a connection and a thread of
/// its own (so that the test's own load does not delay the asking), until
/// `stop` is set: each with when its request was sent (since `t0`).
fn probe_health_at(
    url: String,
    stop: Arc<std::sync::atomic::AtomicBool>,
    t0: Instant,
) -> std::thread::JoinHandle<Vec<(Duration, Duration)>> {
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let client = reqwest::Client::new();
            let mut times = Vec::new();
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                let started = Instant::now();
                let resp = client.get(format!("{url}/health")).send().await.unwrap();
                assert_eq!(resp.status(), 200);
                resp.bytes().await.unwrap();
                times.push((started - t0, started.elapsed()));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            times
        })
    })
}

/// Posts `body` to `POST /v2/files`; the status and the answer.
async fn create_files(client: &reqwest::Client, url: &str, body: &Value) -> (u16, Value) {
    let resp = client
        .post(format!("{url}/v2/files"))
        .header("x-api-key", "k")
        .json(body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

async fn delete_file(client: &reqwest::Client, url: &str, uuid: &str) -> u16 {
    client
        .delete(format!("{url}/v2/files/{uuid}"))
        .header("x-api-key", "k")
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

async fn api_get(client: &reqwest::Client, url: &str, path: &str) -> (u16, Value) {
    let resp = client
        .get(format!("{url}{path}"))
        .header("x-api-key", "k")
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// The RSS bound of the files API soak: 100k announced files (about 1 KB
/// each in the catalog, with their list answers) and 50k queued fetches,
/// one phase at a time (156-193 MiB measured), with room for the allocator's arenas.
const FILES_SOAK_RSS_MIB: u64 = 320;

/// Issue 28's acceptance soak, against the release binary: 50 requests of
/// 1,000 `remote_uri` entries at a port that never accepts, 100 entries
/// pointing at the server itself, 10 clients listing 100k announced files,
/// 500 PUT/DELETE races; `/health` timed throughout (p99 <= 50 ms, max <=
/// 200 ms), open descriptors back to the baseline within 15 s, peak RSS
/// under [`FILES_SOAK_RSS_MIB`], every DELETE that answered 204 followed by
/// a 404.
#[test]
#[ignore = "soak: hostile files API load; run by .ci/run in release mode"]
fn files_api_stays_bounded_under_hostile_fetches_lists_and_races() {
    let bin = start_binary(
        &[
            "--log-level",
            "error",
            // Room for the 100k announced files (and the 50k queued fetches
            // before them); the default is 10,000.
            "--max-pending-files",
            "120000",
            "--remote-fetch-timeout",
            "3s",
        ],
        &[],
    );
    let pid = bin.child.id();
    let url = bin.url.clone();
    // The probe and the hiccup watcher start first, at the default priority;
    // then this thread and the load's runtime go to nice 10 (new threads
    // inherit their creator's).
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let t0 = Instant::now();
    let probe = probe_health_at(url.clone(), Arc::clone(&stop), t0);
    let hiccups = watch_hiccups(Arc::clone(&stop), t0);
    lower_this_threads_priority();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .on_thread_start(lower_this_threads_priority)
        .enable_all()
        .build()
        .unwrap();
    // No idle connections kept: the server's descriptors then count only
    // what it holds for itself (and the probe's one connection).
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    // Let the probe's connection open before the baseline.
    while open_fds(pid) < 4 {
        std::thread::sleep(Duration::from_millis(10));
    }
    std::thread::sleep(Duration::from_millis(200));
    let fd_base = open_fds(pid);
    let mut phases = Vec::new();
    let mut marks = Vec::new();
    let mut fd_peak = fd_base;

    // 1. A black hole: a loopback port whose backlog takes connections that
    //    are never accepted, so no answer ever comes. 50 requests of 1,000.
    let started = Instant::now();
    let hole = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let hole_uri = format!("http://{}/never.bin", hole.local_addr().unwrap());
    let entries: Vec<Value> = (0..1000)
        .map(|_| serde_json::json!({"remote_uri": hole_uri}))
        .collect();
    let body = serde_json::json!({ "files": entries });
    rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let (client, url, body) = (client.clone(), url.clone(), body.clone());
            tasks.push(tokio::spawn(async move {
                create_files(&client, &url, &body).await.0
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 200);
        }
    });
    // The fetches run 16 at a time, whatever is queued: sample a while.
    for _ in 0..20 {
        fd_peak = fd_peak.max(open_fds(pid));
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        fd_peak <= fd_base + 16 + 8,
        "descriptors {fd_peak} with baseline {fd_base}: fetches are not bounded"
    );
    rt.block_on(admin(&client, Method::POST, &url, "/__admin/reset"));
    drop(hole);
    marks.push(("black hole", t0.elapsed()));
    phases.push((
        "50 x 1,000 fetches of a black hole, then reset",
        started.elapsed(),
    ));

    // 2. 100 entries pointing at the server's own /__files.
    let started = Instant::now();
    rt.block_on(async {
        let form = reqwest::multipart::Form::new().part(
            "file",
            reqwest::multipart::Part::bytes(data(1 << 20)).file_name("own.bin"),
        );
        let answer: Value = client
            .post(format!("{url}/v2/files/-/uploads"))
            .header("x-api-key", "k")
            .multipart(form)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let own = answer["file_url"].as_str().unwrap().to_owned();
        let entries: Vec<Value> = (0..100)
            .map(|_| serde_json::json!({"remote_uri": own}))
            .collect();
        let (status, answer) =
            create_files(&client, &url, &serde_json::json!({ "files": entries })).await;
        assert_eq!(status, 200);
        for file in answer["files"].as_array().unwrap() {
            let uuid = file["file_uuid"].as_str().unwrap();
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                let (_, status) = api_get(&client, &url, &format!("/v2/files/{uuid}/status")).await;
                if status["processing_status"] != "pending" {
                    assert_eq!(status["processing_status"], "failed", "{status}");
                    break;
                }
                assert!(Instant::now() < deadline, "{uuid} still pending");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        let uploads: Value = admin(&client, Method::GET, &url, "/__admin/uploads")
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(
            uploads["uploads"].as_array().unwrap().len(),
            1,
            "nothing copied"
        );
        admin(&client, Method::POST, &url, "/__admin/reset").await;
    });
    phases.push(("100 self-pointing fetches refused", started.elapsed()));
    marks.push(("self", t0.elapsed()));

    // 3. 100k announced files, listed by 10 clients at once.
    let started = Instant::now();
    rt.block_on(async {
        let body = serde_json::json!({
            "files": vec![serde_json::json!({"local_file_path": "a.mp4"}); 1000]
        });
        let limit = Arc::new(tokio::sync::Semaphore::new(4));
        let mut tasks = Vec::new();
        for _ in 0..100 {
            let permit = Arc::clone(&limit).acquire_owned().await.unwrap();
            let (client, url, body) = (client.clone(), url.clone(), body.clone());
            tasks.push(tokio::spawn(async move {
                let status = create_files(&client, &url, &body).await.0;
                drop(permit);
                status
            }));
        }
        for t in tasks {
            assert_eq!(t.await.unwrap(), 200);
        }
    });
    phases.push(("100k files announced", started.elapsed()));
    marks.push(("announce", t0.elapsed()));
    let started = Instant::now();
    let lists = rt.block_on(async {
        let mut tasks = Vec::new();
        for c in 0..10u64 {
            let (client, url) = (client.clone(), url.clone());
            tasks.push(tokio::spawn(async move {
                let mut lists = 0;
                let until = Instant::now() + Duration::from_secs(8);
                while Instant::now() < until {
                    let offset = (c * 7919 + lists * 104_729) % 100_000;
                    let path = format!("/v2/files?limit=100&offset={offset}");
                    let (status, page) = api_get(&client, &url, &path).await;
                    assert_eq!(status, 200);
                    assert_eq!(page["count"], 100_000);
                    lists += 1;
                }
                lists
            }));
        }
        let mut total = 0;
        for t in tasks {
            total += t.await.unwrap();
        }
        total
    });
    phases.push(("10 clients listing 100k files for 8 s", started.elapsed()));
    let rss_lists = proc_status(pid, "VmRSS:");
    rt.block_on(admin(&client, Method::POST, &url, "/__admin/reset"));
    marks.push(("lists", t0.elapsed()));

    // 4. PUT/DELETE races: whatever lands first, a 204 is followed by 404s.
    let started = Instant::now();
    let (puts_first, deletes_first) = rt.block_on(async {
        let (mut puts_first, mut deletes_first) = (0, 0);
        for _ in 0..500 {
            let (_, answer) = create_files(
                &client,
                &url,
                &serde_json::json!({"files": [{"local_file_path": "race.bin"}]}),
            )
            .await;
            let uuid = answer["files"][0]["file_uuid"].as_str().unwrap().to_owned();
            let put_url = answer["files"][0]["file_url"].as_str().unwrap().to_owned();
            let put = client.put(&put_url).body(vec![1u8; 4096]).send();
            let (put, deleted) = tokio::join!(put, delete_file(&client, &url, &uuid));
            assert_eq!(deleted, 204);
            match put.unwrap().status().as_u16() {
                200 => puts_first += 1,
                _ => deletes_first += 1,
            }
            let (got, _) = api_get(&client, &url, &format!("/v2/files/{uuid}")).await;
            assert_eq!(got, 404, "{uuid} answered 204 to DELETE, then {got}");
            assert_eq!(delete_file(&client, &url, &uuid).await, 404);
        }
        (puts_first, deletes_first)
    });
    phases.push(("500 PUT/DELETE races", started.elapsed()));
    marks.push(("races", t0.elapsed()));
    rt.block_on(admin(&client, Method::POST, &url, "/__admin/reset"));

    // Descriptors back to the baseline within 15 s.
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut fds = open_fds(pid);
    while fds > fd_base && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        fds = open_fds(pid);
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let samples = probe.join().unwrap();
    let hiccups = hiccups.join().unwrap();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    for (at, over) in &hiccups {
        eprintln!(
            "files soak: the machine stalled {:.1} ms at {:.1} s (a sleeping thread overslept)",
            ms(*over),
            at.as_secs_f64()
        );
    }
    let mut slow: Vec<_> = samples.clone();
    slow.sort_by_key(|(_, took)| std::cmp::Reverse(*took));
    for (at, took) in slow.iter().take(5) {
        let phase = marks
            .iter()
            .find(|(_, end)| at < end)
            .map_or("end", |(p, _)| *p);
        eprintln!(
            "files soak: slowest /health: {:.1} ms at {:.1} s ({phase})",
            ms(*took),
            at.as_secs_f64()
        );
    }
    let mut times: Vec<Duration> = samples.iter().map(|(_, took)| *took).collect();
    times.sort();
    let p99 = times[times.len() * 99 / 100];
    // The max leaves out a probe the machine's own stall explains: one that
    // overlaps a hiccup of at least its excess over 200 ms, so that the
    // server's share is still under the bound. At most 3 such: a machine
    // that stalls more often cannot judge the bound at all.
    let bound = Duration::from_millis(200);
    let (excused, counted): (Vec<_>, Vec<_>) = samples.iter().partition(|(at, took)| {
        *took > bound
            && hiccups.iter().any(|(h_at, over)| {
                *h_at < *at + *took && *at < *h_at + *over && *over >= *took - bound
            })
    });
    for (at, took) in &excused {
        eprintln!(
            "files soak: /health took {:.1} ms at {:.1} s, during a stall of the machine: not counted in the max",
            ms(*took),
            at.as_secs_f64()
        );
    }
    assert!(
        excused.len() <= 3,
        "{} slow probes during stalls of the machine: too noisy to judge",
        excused.len()
    );
    let max = counted
        .iter()
        .map(|(_, took)| *took)
        .max()
        .unwrap_or_default();
    let hwm = proc_status(pid, "VmHWM:");
    for (phase, took) in &phases {
        eprintln!("files soak: {phase}: {:.0} ms", ms(*took));
    }
    eprintln!(
        "files soak: {} /health probes, p99 {:.1} ms, max {:.1} ms (machine stalls: {}); fds {fd_base} -> peak {fd_peak} -> {fds}; {lists} lists; races: PUT first {puts_first}, DELETE first {deletes_first}; RSS {} MiB during lists, peak {} MiB",
        times.len(),
        ms(p99),
        ms(max),
        hiccups.len(),
        rss_lists / 1024,
        hwm / 1024
    );
    assert!(fds <= fd_base, "descriptors {fds}, baseline {fd_base}");
    assert!(ms(p99) <= 50.0, "/health p99 {:.1} ms", ms(p99));
    assert!(ms(max) <= 200.0, "/health max {:.1} ms", ms(max));
    assert!(
        hwm / 1024 <= FILES_SOAK_RSS_MIB,
        "peak RSS {} MiB over {FILES_SOAK_RSS_MIB} MiB",
        hwm / 1024
    );
}
