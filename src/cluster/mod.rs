//! Replicas that behave as one service (`--state redis://`): the run-time
//! rules, every rule's counters and the journal live in Redis, under a key
//! prefix, so that several replicas behind a load balancer answer as one.
//!
//! - **Rules.** A change (add, delete, clear, reset) is one Lua script that
//!   also sets a version key to a new random token. Before a replica decides a request it
//!   reads that key (one `GET`); when it moved, it reads the rules in one
//!   script and installs them. A change acknowledged by any replica therefore
//!   decides the next request any replica answers. Fixture files stay each
//!   replica's own (all replicas load the same files); their deletions are
//!   shared.
//! - **Counters.** `matched`, `fired`, `after` and `times` are counted by one
//!   script per matching rule ([`scripts::COUNT`]), so `times: N` fires N
//!   times cluster-wide under any concurrency. A `probability` draw is
//!   numbered by a cluster-wide sequence and drawn from the seed and that
//!   number: the same seed gives the same draws across the cluster.
//! - **Journal.** One list, bounded in entries and bytes as the in-memory
//!   journal is; every record names its replica. A request is journaled
//!   before its answer is sent.
//! - **Faults of the store.** Unreachable at start: the server does not
//!   start. While serving, a request that needs the store and cannot reach
//!   it is answered 503 `server.unavailable`, and `/health` says `degraded`;
//!   the connection is re-made by itself. A script either ran whole or not
//!   at all, and none is retried, so no counter is counted twice.

mod scripts;

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redis::aio::ConnectionManager;
use redis::Script;

use crate::journal::RequestRecord;
use crate::rules::model::{Phase, Rule};
use crate::rules::{Count, Counters, Decision, Entry, RequestFacts, RuleEngine, RuleStatus};
use crate::sync::lock;

/// Why the state store could not be used.
#[derive(Debug, Clone, thiserror::Error)]
#[error("the state store {url} is unavailable: {reason}")]
pub(crate) struct StoreError {
    /// The store's URL, without its password.
    pub(crate) url: String,
    pub(crate) reason: String,
}

/// How a replica reaches the shared state.
#[derive(Debug, Clone)]
pub(crate) struct ClusterConfig {
    /// `redis://HOST:PORT[/DB]` or `rediss://...`.
    pub(crate) url: String,
    /// Prefix of every key, so that several stagings share one Redis.
    pub(crate) prefix: String,
    /// This replica's name in the journal.
    pub(crate) replica: String,
}

/// How long a command may take before the store counts as unavailable.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long `/health` waits for the store's answer (a probe's timeout is
/// often 1 s).
const HEALTH_TIMEOUT: Duration = Duration::from_millis(500);
/// How long connecting may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// What [`Cluster::version`] holds before the first read. The store's
/// version and epoch are random tokens ([`token`]), 0 when absent.
const UNREAD: u64 = u64::MAX;

/// A new version or epoch token: random, never 0 (absent) nor [`UNREAD`].
fn token() -> u64 {
    rand::random::<u64>().clamp(1, UNREAD - 1)
}

/// The names of the keys, under the prefix.
#[derive(Debug)]
struct Keys {
    version: String,
    epoch: String,
    cleared: String,
    removed: String,
    order: String,
    rules: String,
    ids: String,
    fixture_ids: String,
    next_id: String,
    next_key: String,
    counters: String,
    draws: String,
    journal: String,
    journal_seq: String,
    journal_bytes: String,
    seed: String,
    files: String,
    presign_secret: String,
}

impl Keys {
    fn new(prefix: &str) -> Self {
        let key = |name: &str| format!("{prefix}:{name}");
        Keys {
            version: key("rules:version"),
            epoch: key("epoch"),
            cleared: key("rules:cleared"),
            removed: key("rules:removed"),
            order: key("rules:order"),
            rules: key("rules"),
            ids: key("rules:ids"),
            fixture_ids: key("rules:fixture-ids"),
            next_id: key("rules:next-id"),
            next_key: key("rules:next-key"),
            counters: key("counters"),
            draws: key("draws"),
            journal: key("journal"),
            journal_seq: key("journal:seq"),
            journal_bytes: key("journal:bytes"),
            seed: key("seed"),
            files: key("files"),
            presign_secret: key("presign-secret"),
        }
    }
}

/// The scripts, hashed once.
#[derive(Debug)]
struct Scripts {
    count: Script,
    claim: Script,
    read_rules: Script,
    add_rules: Script,
    remove_rule: Script,
    clear_rules: Script,
    reset: Script,
    journal_push: Script,
    journal_read: Script,
}

impl Scripts {
    fn new() -> Self {
        Scripts {
            count: Script::new(scripts::COUNT),
            claim: Script::new(scripts::CLAIM),
            read_rules: Script::new(scripts::READ_RULES),
            add_rules: Script::new(scripts::ADD_RULES),
            remove_rule: Script::new(scripts::REMOVE_RULE),
            clear_rules: Script::new(scripts::CLEAR_RULES),
            reset: Script::new(scripts::RESET),
            journal_push: Script::new(scripts::JOURNAL_PUSH),
            journal_read: Script::new(scripts::JOURNAL_READ),
        }
    }
}

/// A run-time rule as the store keeps it.
#[derive(serde::Deserialize)]
struct SharedRule {
    key: String,
    id: String,
    source: String,
    rule: Rule,
}

/// What a rules change found besides the rules themselves.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Synced {
    /// Nothing to do beyond the rules.
    Rules,
    /// Another replica reset the service: this one's fixtures were
    /// reloaded, and its own journal and files are to be cleared.
    Reset,
}

/// One replica's handle on the shared state.
#[derive(Debug)]
pub(crate) struct Cluster {
    conn: ConnectionManager,
    url: String,
    replica: String,
    /// This process, among the writers of the files' events: random, so
    /// that replicas given the same `--replica-id` by mistake still read
    /// each other's changes.
    origin: String,
    keys: Keys,
    scripts: Scripts,
    seed: u64,
    journal_entries: usize,
    journal_bytes: u64,
    /// The rules version installed ([`UNREAD`] before the first read).
    version: AtomicU64,
    /// The epoch (resets) the installed rules belong to.
    epoch: AtomicU64,
    /// One rules read at a time: requests that find the version moved wait
    /// for the one that reads.
    reading: tokio::sync::Mutex<()>,
    /// Why the store last failed, while it has not answered since.
    trouble: Mutex<Option<String>>,
    /// Commands that failed, for `GET /metrics`.
    errors: AtomicU64,
    /// Changes to the files made here and not yet written to the store.
    outbox: Mutex<Vec<String>>,
    /// One writer of the outbox at a time, so that a request whose change
    /// another request took out waits until it is written.
    flushing: tokio::sync::Mutex<()>,
    /// The id of the last files event read (`0-0`: none yet), held while
    /// the events read are made here, so that they are made in order.
    files_read: tokio::sync::Mutex<String>,
}

/// Most files events the store keeps (older ones are trimmed): a replica
/// that falls further behind misses changes.
const MAX_FILE_EVENTS: u64 = 1_000_000;
/// Files events read in one round trip.
const FILE_EVENTS_PER_READ: usize = 1000;

/// The URL as shown: its password replaced.
fn shown(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://***@{host}"),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

impl Cluster {
    /// Connects (and pings): an unreachable store is an error naming it.
    /// The draws' seed is `seed`, or (none given) the one the first replica
    /// put in the store, so that every replica draws alike.
    pub(crate) async fn connect(
        config: &ClusterConfig,
        seed: Option<u64>,
        journal_entries: usize,
        journal_bytes: u64,
        fixture_ids: Vec<String>,
    ) -> Result<Self, StoreError> {
        let url = shown(&config.url);
        let fail = |reason: String| StoreError {
            url: url.clone(),
            reason,
        };
        if !(config.url.starts_with("redis://") || config.url.starts_with("rediss://")) {
            return Err(fail(
                "not a Redis URL: use redis://HOST:PORT[/DB] or rediss://...".into(),
            ));
        }
        // `rediss://`: rustls on ring, as the S3 client has it.
        let _already = rustls::crypto::ring::default_provider().install_default();
        let client = redis::Client::open(config.url.as_str()).map_err(|e| fail(e.to_string()))?;
        let settings = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(CONNECT_TIMEOUT))
            .set_response_timeout(Some(RESPONSE_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let mut conn = tokio::time::timeout(
            CONNECT_TIMEOUT * 3,
            ConnectionManager::new_with_config(client, settings),
        )
        .await
        .map_err(|_| fail("no answer in time".into()))?
        .map_err(|e| fail(e.to_string()))?;
        let keys = Keys::new(&config.prefix);
        // The fixture ids, so that a generated run-time id never takes one.
        for chunk in fixture_ids.chunks(10_000) {
            let _: () = redis::cmd("SADD")
                .arg(&keys.fixture_ids)
                .arg(chunk)
                .query_async(&mut conn)
                .await
                .map_err(|e| fail(e.to_string()))?;
        }
        let seed = match seed {
            Some(seed) => seed,
            None => {
                let _: () = redis::cmd("SET")
                    .arg(&keys.seed)
                    .arg(rand::random::<u64>())
                    .arg("NX")
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| fail(e.to_string()))?;
                redis::cmd("GET")
                    .arg(&keys.seed)
                    .query_async(&mut conn)
                    .await
                    .map_err(|e| fail(e.to_string()))?
            }
        };
        Ok(Cluster {
            conn,
            url,
            replica: config.replica.clone(),
            origin: crate::http_util::hex(&rand::random::<[u8; 16]>()),
            keys,
            scripts: Scripts::new(),
            seed,
            journal_entries,
            journal_bytes,
            version: AtomicU64::new(UNREAD),
            epoch: AtomicU64::new(0),
            reading: tokio::sync::Mutex::new(()),
            trouble: Mutex::new(None),
            errors: AtomicU64::new(0),
            outbox: Mutex::new(Vec::new()),
            flushing: tokio::sync::Mutex::new(()),
            files_read: tokio::sync::Mutex::new("0-0".to_owned()),
        })
    }

    /// The key presigned URLs are signed with, the same on every replica:
    /// the one the first replica put in the store.
    pub(crate) async fn presign_secret(&self) -> Result<String, StoreError> {
        let candidate = crate::http_util::hex(&rand::random::<[u8; 32]>());
        let set = redis::cmd("SET")
            .arg(&self.keys.presign_secret)
            .arg(candidate)
            .arg("NX")
            .to_owned();
        self.query::<()>(&set).await?;
        self.query(redis::cmd("GET").arg(&self.keys.presign_secret))
            .await
    }

    /// A change to the files made here, to be written to the store by the
    /// next [`flush`](Self::flush).
    pub(crate) fn publish(&self, event: String) {
        lock(&self.outbox).push(event);
    }

    /// Writes the changes made here to the store, in order. Returns once
    /// every change made before the call is written (by this call or one
    /// running). On failure the changes stay, to be written by the next.
    pub(crate) async fn flush(&self) -> Result<(), StoreError> {
        let _one_writer = self.flushing.lock().await;
        let events = std::mem::take(&mut *lock(&self.outbox));
        if events.is_empty() {
            return Ok(());
        }
        let mut pipe = redis::pipe();
        for event in &events {
            pipe.cmd("XADD")
                .arg(&self.keys.files)
                .arg("MAXLEN")
                .arg("~")
                .arg(MAX_FILE_EVENTS)
                .arg("*")
                .arg("o")
                .arg(&self.origin)
                .arg("e")
                .arg(event)
                .ignore();
        }
        let mut conn = self.conn.clone();
        let written: redis::RedisResult<()> = pipe.query_async(&mut conn).await;
        if let Err(err) = self.noted(written) {
            let mut outbox = lock(&self.outbox);
            let later = std::mem::replace(&mut *outbox, events);
            outbox.extend(later);
            return Err(err);
        }
        Ok(())
    }

    /// Reads the other replicas' changes to the files made since the last
    /// read, and makes each here (`apply`), in the store's order.
    pub(crate) async fn read_files(&self, mut apply: impl FnMut(&str)) -> Result<(), StoreError> {
        let mut last = self.files_read.lock().await;
        loop {
            let start = if *last == "0-0" {
                "-".to_owned()
            } else {
                format!("({last}")
            };
            let read: Vec<(String, Vec<String>)> = self
                .query(
                    redis::cmd("XRANGE")
                        .arg(&self.keys.files)
                        .arg(start)
                        .arg("+")
                        .arg("COUNT")
                        .arg(FILE_EVENTS_PER_READ),
                )
                .await?;
            let full = read.len() == FILE_EVENTS_PER_READ;
            for (id, fields) in read {
                let field = |name: &str| {
                    fields
                        .chunks(2)
                        .find(|pair| pair.first().map(String::as_str) == Some(name))
                        .and_then(|pair| pair.get(1))
                };
                if field("o") != Some(&self.origin) {
                    if let Some(event) = field("e") {
                        apply(event);
                    }
                }
                *last = id;
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// The store's URL (without its password).
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// This replica's name.
    pub(crate) fn replica(&self) -> &str {
        &self.replica
    }

    /// State-store commands that failed since start.
    pub(crate) fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// A command's result, noted: a failure is counted and kept as the
    /// reason `/health` gives until the store answers again.
    fn noted<T>(&self, result: redis::RedisResult<T>) -> Result<T, StoreError> {
        match result {
            Ok(value) => {
                let mut trouble = lock(&self.trouble);
                if trouble.is_some() {
                    tracing::info!(store = %self.url, "the state store answers again");
                    *trouble = None;
                }
                Ok(value)
            }
            Err(err) => {
                self.errors.fetch_add(1, Ordering::Relaxed);
                let reason = err.to_string();
                let mut trouble = lock(&self.trouble);
                if trouble.is_none() {
                    tracing::warn!(store = %self.url, error = %reason, "the state store is unavailable");
                }
                *trouble = Some(reason.clone());
                Err(StoreError {
                    url: self.url.clone(),
                    reason,
                })
            }
        }
    }

    /// Runs a script, its failure noted ([`noted`](Self::noted)).
    async fn run<T: redis::FromRedisValue>(
        &self,
        invocation: &redis::ScriptInvocation<'_>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn.clone();
        self.noted(invocation.invoke_async(&mut conn).await)
    }

    /// Sends a command, its failure noted ([`noted`](Self::noted)).
    async fn query<T: redis::FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, StoreError> {
        let mut conn = self.conn.clone();
        self.noted(cmd.query_async(&mut conn).await)
    }

    /// Whether the store answers now (a `PING` answered within
    /// [`HEALTH_TIMEOUT`]); `Err` says why not.
    pub(crate) async fn check(&self) -> Result<(), StoreError> {
        let mut conn = self.conn.clone();
        let ping = redis::cmd("PING");
        let pinged: redis::RedisResult<String> =
            match tokio::time::timeout(HEALTH_TIMEOUT, ping.query_async(&mut conn)).await {
                Ok(pinged) => pinged,
                Err(_) => Err(redis::RedisError::from(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("no answer to PING within {} ms", HEALTH_TIMEOUT.as_millis()),
                ))),
            };
        self.noted(pinged).map(drop)
    }

    /// Brings this replica's rules up to the store's: one `GET` of the
    /// version, and when it moved, one read of the rules. After another
    /// replica's reset, also reloads this replica's fixtures from disk.
    pub(crate) async fn sync(&self, engine: &Arc<RuleEngine>) -> Result<Synced, StoreError> {
        let version: Result<Option<u64>, StoreError> =
            self.query(redis::cmd("GET").arg(&self.keys.version)).await;
        let version = version?.unwrap_or(0);
        if version == self.version.load(Ordering::SeqCst) {
            return Ok(Synced::Rules);
        }
        let _reading = self.reading.lock().await;
        if version == self.version.load(Ordering::SeqCst) {
            return Ok(Synced::Rules);
        }
        let k = &self.keys;
        let read: Vec<String> = self
            .run(
                self.scripts
                    .read_rules
                    .key(&k.version)
                    .key(&k.epoch)
                    .key(&k.cleared)
                    .key(&k.removed)
                    .key(&k.order)
                    .key(&k.rules),
            )
            .await?;
        let number = |i: usize| read.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
        let (version, epoch, cleared, removed_count) = (
            number(0),
            number(1),
            read.get(2).is_some_and(|c| c == "1"),
            number(3),
        );
        let removed_end = 4usize.saturating_add(usize::try_from(removed_count).unwrap_or(0));
        // A new epoch is another replica's reset; an absent one (0) is a
        // store that lost its data, which resets nothing here.
        let previous = self.version.load(Ordering::SeqCst);
        let reset = previous != UNREAD && epoch != 0 && epoch != self.epoch.load(Ordering::SeqCst);
        // Parsing and indexing many rules (or reloading the fixtures) takes
        // a while: on the blocking pool, so that the async workers serve on.
        let engine = Arc::clone(engine);
        let url = self.url.clone();
        let installed = tokio::task::spawn_blocking(move || {
            let removed: HashSet<String> =
                read.iter().take(removed_end).skip(4).cloned().collect();
            let mut admin = Vec::new();
            for text in read.iter().skip(removed_end) {
                match serde_json::from_str::<SharedRule>(text) {
                    Ok(shared) => admin.push(Entry::shared(
                        shared.id,
                        shared.source,
                        shared.rule,
                        shared.key,
                    )),
                    Err(err) => tracing::warn!(
                        store = %url,
                        error = %err,
                        "a shared rule this version cannot read is left out"
                    ),
                }
            }
            if reset {
                if let Err(err) = engine.reset() {
                    tracing::warn!(error = %err, "after a reset, the fixtures could not be reloaded");
                }
            }
            engine.install_shared(admin, &removed, cleared);
        })
        .await;
        if let Err(err) = installed {
            return Err(StoreError {
                url: self.url.clone(),
                reason: format!("installing the shared rules failed: {err}"),
            });
        }
        self.epoch.store(epoch, Ordering::SeqCst);
        self.version.store(version, Ordering::SeqCst);
        Ok(if reset { Synced::Reset } else { Synced::Rules })
    }

    /// The first rule of `phase` that fires, counted in the store.
    pub(crate) async fn decide(
        &self,
        engine: &RuleEngine,
        phase: Phase,
        facts: &RequestFacts<'_>,
        seen: Option<&mut crate::rules::near_miss::Seen>,
    ) -> Result<Option<Decision>, StoreError> {
        let counters = SharedCounters {
            cluster: self,
            epoch: self.epoch.load(Ordering::SeqCst),
        };
        engine.decide_with(phase, facts, seen, &counters).await
    }

    /// Adds run-time rules on every replica (newest first, a batch in its
    /// order), all or nothing; returns their ids, or the id already taken.
    pub(crate) async fn add_rules(
        &self,
        engine: &Arc<RuleEngine>,
        rules: Vec<Rule>,
        source: &str,
    ) -> Result<Result<Vec<String>, String>, StoreError> {
        self.sync(engine).await?;
        // Each rule as (id or "", JSON): a batch of 100k takes a while, on
        // the blocking pool.
        let written = tokio::task::spawn_blocking(move || {
            rules
                .iter()
                .map(|rule| {
                    let id = rule.id.clone().unwrap_or_default();
                    serde_json::to_string(rule).map(|text| (id, text))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .await;
        let fail = |reason: String| StoreError {
            url: self.url.clone(),
            reason,
        };
        let written = match written {
            Ok(Ok(written)) => written,
            Ok(Err(err)) => return Err(fail(format!("a rule could not be written: {err}"))),
            Err(err) => return Err(fail(format!("writing the rules failed: {err}"))),
        };
        let k = &self.keys;
        let mut invocation = self.scripts.add_rules.prepare_invoke();
        for key in [
            &k.ids,
            &k.fixture_ids,
            &k.removed,
            &k.cleared,
            &k.order,
            &k.rules,
            &k.next_id,
            &k.next_key,
            &k.version,
        ] {
            invocation.key(key);
        }
        invocation.arg(source).arg(token());
        for (id, text) in &written {
            invocation.arg(id).arg(text);
        }
        let answer: Vec<String> = self.run(&invocation).await?;
        let mut answer = answer.into_iter();
        let outcome = match answer.next().as_deref() {
            Some("ok") => Ok(answer.collect()),
            _ => Err(answer.next().unwrap_or_default()),
        };
        self.sync(engine).await?;
        Ok(outcome)
    }

    /// Removes a rule (run-time, or a fixture rule on every replica).
    pub(crate) async fn remove_rule(
        &self,
        engine: &Arc<RuleEngine>,
        id: &str,
    ) -> Result<bool, StoreError> {
        self.sync(engine).await?;
        let k = &self.keys;
        let fixture = if engine.has_fixture(id) { "1" } else { "0" };
        let removed: Result<u64, StoreError> = self
            .run(
                self.scripts
                    .remove_rule
                    .key(&k.ids)
                    .key(&k.order)
                    .key(&k.rules)
                    .key(&k.removed)
                    .key(&k.version)
                    .arg(id)
                    .arg(fixture)
                    .arg(token()),
            )
            .await;
        let removed = removed? == 1;
        self.sync(engine).await?;
        Ok(removed)
    }

    /// Removes every rule on every replica, fixture rules included (until a
    /// reset); returns how many this replica had.
    pub(crate) async fn clear_rules(&self, engine: &Arc<RuleEngine>) -> Result<usize, StoreError> {
        self.sync(engine).await?;
        let had = engine.entries().len();
        let k = &self.keys;
        let cleared: Result<u64, StoreError> = self
            .run(
                self.scripts
                    .clear_rules
                    .key(&k.ids)
                    .key(&k.order)
                    .key(&k.rules)
                    .key(&k.removed)
                    .key(&k.cleared)
                    .key(&k.version)
                    .arg(token()),
            )
            .await;
        cleared?;
        self.sync(engine).await?;
        Ok(had)
    }

    /// Resets the shared state (rules, counters, draws, journal); every
    /// replica reloads its fixtures when it next syncs, this one now.
    pub(crate) async fn reset(&self, engine: &Arc<RuleEngine>) -> Result<(), StoreError> {
        let k = &self.keys;
        let reset: Result<u64, StoreError> = self
            .run(
                self.scripts
                    .reset
                    .key(&k.ids)
                    .key(&k.order)
                    .key(&k.rules)
                    .key(&k.removed)
                    .key(&k.cleared)
                    .key(&k.counters)
                    .key(&k.draws)
                    .key(&k.journal)
                    .key(&k.journal_bytes)
                    .key(&k.files)
                    .key(&k.epoch)
                    .key(&k.version)
                    .arg(token())
                    .arg(token()),
            )
            .await;
        reset?;
        self.sync(engine).await.map(drop)
    }

    /// The rules in evaluation order, with their counters from the store.
    pub(crate) async fn statuses(
        &self,
        engine: &Arc<RuleEngine>,
    ) -> Result<Vec<RuleStatus>, StoreError> {
        self.sync(engine).await?;
        let entries = engine.entries();
        let epoch = self.epoch.load(Ordering::SeqCst);
        let mut statuses = Vec::with_capacity(entries.len());
        for chunk in entries.chunks(5_000) {
            let mut fields = Vec::with_capacity(chunk.len() * 2);
            for entry in chunk {
                let key = entry.key_at(epoch);
                fields.push(format!("{key}:m"));
                fields.push(format!("{key}:f"));
            }
            let counts: Vec<Option<u64>> = self
                .query(redis::cmd("HMGET").arg(&self.keys.counters).arg(&fields))
                .await?;
            for (i, entry) in chunk.iter().enumerate() {
                let count = |j: usize| counts.get(j).copied().flatten().unwrap_or(0);
                statuses.push(entry.status_with(count(2 * i), count(2 * i + 1)));
            }
        }
        Ok(statuses)
    }

    /// Journals a request for every replica to read, before its answer is
    /// sent; the record names this replica.
    pub(crate) async fn journal(&self, record: &RequestRecord) -> Result<(), StoreError> {
        if self.journal_entries == 0 {
            return Ok(());
        }
        let text = serde_json::to_string(record).map_err(|e| StoreError {
            url: self.url.clone(),
            reason: format!("a journal record could not be written: {e}"),
        })?;
        let k = &self.keys;
        let pushed: Result<u64, StoreError> = self
            .run(
                self.scripts
                    .journal_push
                    .key(&k.journal)
                    .key(&k.journal_seq)
                    .key(&k.journal_bytes)
                    .arg(text)
                    .arg(self.journal_entries)
                    .arg(self.journal_bytes),
            )
            .await;
        pushed.map(drop)
    }

    /// The records journaled after `seq` by every replica, oldest first,
    /// and the seq of the oldest still journaled (one past the last when
    /// none is).
    pub(crate) async fn journal_since(
        &self,
        seq: u64,
    ) -> Result<(Vec<Arc<RequestRecord>>, u64), StoreError> {
        let k = &self.keys;
        let read: Result<Vec<String>, StoreError> = self
            .run(
                self.scripts
                    .journal_read
                    .key(&k.journal)
                    .key(&k.journal_seq),
            )
            .await;
        let read = read?;
        let last = read
            .first()
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        let mut oldest = last.saturating_add(1);
        let mut records = Vec::new();
        for entry in read.iter().skip(1) {
            let Some((number, text)) = entry.split_once(' ') else {
                continue;
            };
            let Ok(number) = number.parse::<u64>() else {
                continue;
            };
            oldest = number;
            if number <= seq {
                continue;
            }
            match serde_json::from_str::<RequestRecord>(text) {
                Ok(mut record) => {
                    record.seq = number;
                    records.push(Arc::new(record));
                }
                Err(err) => {
                    tracing::warn!(error = %err, "a journal record this version cannot read is left out")
                }
            }
        }
        records.reverse();
        Ok((records, oldest))
    }

    /// The shared journal's entries and bytes.
    pub(crate) async fn journal_usage(&self) -> Result<(u64, u64), StoreError> {
        let mut conn = self.conn.clone();
        let usage: redis::RedisResult<(u64, Option<u64>)> = redis::pipe()
            .cmd("LLEN")
            .arg(&self.keys.journal)
            .cmd("GET")
            .arg(&self.keys.journal_bytes)
            .query_async(&mut conn)
            .await;
        let (entries, bytes) = self.noted(usage)?;
        Ok((entries, bytes.unwrap_or(0)))
    }

    /// Empties the journal of every replica (its seq goes on).
    pub(crate) async fn clear_journal(&self) -> Result<(), StoreError> {
        let cleared: Result<(), StoreError> = self
            .query(
                redis::cmd("DEL")
                    .arg(&self.keys.journal)
                    .arg(&self.keys.journal_bytes),
            )
            .await;
        cleared
    }
}

/// The draw numbered `seq` (cluster-wide) of probability `p`, for `seed`:
/// the seed and the number mixed (SplitMix64's constant), so that
/// neighbouring numbers give unrelated draws.
fn draw(seed: u64, p: f64, seq: u64) -> bool {
    let mixed = seed ^ seq.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    StdRng::seed_from_u64(mixed).gen_bool(p)
}

/// The counters in the store, for one decision.
struct SharedCounters<'a> {
    cluster: &'a Cluster,
    epoch: u64,
}

impl SharedCounters<'_> {
    fn times(entry: &Entry) -> i64 {
        entry
            .rule()
            .when
            .times
            .map_or(-1, |t| i64::try_from(t).unwrap_or(i64::MAX))
    }
}

impl Counters for SharedCounters<'_> {
    type Error = StoreError;

    async fn count(&self, entry: &Entry, draw: bool) -> Result<Count, StoreError> {
        let cluster = self.cluster;
        let counted: Result<(u8, u64), StoreError> = cluster
            .run(
                cluster
                    .scripts
                    .count
                    .key(&cluster.keys.counters)
                    .key(&cluster.keys.draws)
                    .arg(entry.key_at(self.epoch))
                    .arg(entry.rule().when.after)
                    .arg(Self::times(entry))
                    .arg(if draw { "1" } else { "0" }),
            )
            .await;
        Ok(match counted? {
            (0, matched) => Count::After(matched),
            (1, fired) => Count::Times(fired),
            (2, seq) => Count::Draw(seq),
            _ => Count::Fired,
        })
    }

    fn draw(&self, p: f64, seq: u64) -> bool {
        draw(self.cluster.seed, p, seq)
    }

    async fn claim(&self, entry: &Entry) -> Result<bool, StoreError> {
        let cluster = self.cluster;
        let claimed: Result<u8, StoreError> = cluster
            .run(
                cluster
                    .scripts
                    .claim
                    .key(&cluster.keys.counters)
                    .arg(entry.key_at(self.epoch))
                    .arg(Self::times(entry)),
            )
            .await;
        Ok(claimed? == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_not_shown() {
        assert_eq!(
            shown("redis://user:secret@cache:6379/2"),
            "redis://***@cache:6379/2"
        );
        assert_eq!(shown("redis://cache:6379"), "redis://cache:6379");
    }

    #[test]
    fn draws_follow_the_probability_and_repeat_for_a_seed() {
        for p in [0.1, 0.5, 0.9] {
            let held = (1..=10_000).filter(|&seq| draw(42, p, seq)).count();
            let expected = p * 10_000.0;
            // Binomial: 5 standard deviations at most (≈ 150 at p = 0.5).
            assert!(
                (held as f64 - expected).abs() < 5.0 * (expected * (1.0 - p)).sqrt(),
                "p = {p}: {held} of 10,000 held"
            );
        }
        let run = |seed| (1..=64).map(|seq| draw(seed, 0.5, seq)).collect::<Vec<_>>();
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8));
    }

    #[test]
    fn tokens_are_never_absent_nor_unread() {
        for _ in 0..1000 {
            let t = token();
            assert!(t != 0 && t != UNREAD);
        }
    }
}
