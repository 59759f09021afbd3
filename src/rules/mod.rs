//! Fault rules: the model ([`Rule`]), loading fixture files, matching, and the
//! [`RuleEngine`] that decides, phase by phase, which rule fires.
//!
//! Order: rules added at run time (newest first), then fixture rules in file
//! order. The first rule of the current phase whose `match` and `when` hold
//! decides. Requests match against an immutable snapshot of the rules, outside
//! any lock; counters are atomics, claimed with compare-and-swap, so `after`
//! and `times` are exact under concurrency (see [`RuleEngine`]).

pub(crate) mod glob;
pub(crate) mod loading;
pub(crate) mod model;
pub(crate) mod near_miss;
pub(crate) mod schema;
pub(crate) mod watch;

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;

pub use loading::{check_fixtures, FixtureCheck, FixtureError};
use model::{Action, Phase, RouteName, Rule};

use crate::sync::lock;

/// What a rule can see of a request; later phases fill in more.
#[derive(Debug)]
pub(crate) struct RequestFacts<'a> {
    pub(crate) route: RouteName,
    pub(crate) method: &'a str,
    pub(crate) path: &'a str,
    pub(crate) headers: &'a http::HeaderMap,
    pub(crate) query: &'a [(String, String)],
    pub(crate) filename: Option<&'a str>,
    pub(crate) content_type: Option<&'a str>,
    pub(crate) size: Option<u64>,
}

/// A header value as text, exactly when [`http::HeaderValue::to_str`] gives
/// it (visible ASCII and tabs), but checked a word at a time: `to_str` looks
/// at each byte, which with a 190 KB header and a few header rules was most
/// of a request's time. A `HeaderValue` never holds control bytes other than
/// tab, nor DEL, so "ASCII" is all that is left to check (DEL is ruled out
/// again, cheaply, should that ever change).
pub(crate) fn header_text(value: &http::HeaderValue) -> Option<&str> {
    let bytes = value.as_bytes();
    if !bytes.is_ascii() || bytes.contains(&0x7f) {
        return None;
    }
    std::str::from_utf8(bytes).ok()
}

impl model::Match {
    /// Does every condition hold for these facts?
    pub(crate) fn matches(&self, facts: &RequestFacts<'_>) -> bool {
        // A rule that names neither a route nor a path is for uploads.
        let route_ok = match (self.route, &self.path) {
            (Some(route), _) => facts.route == route,
            (None, Some(_)) => true,
            (None, None) => facts.route == RouteName::Upload,
        };
        let path_ok = self
            .path
            .as_ref()
            .is_none_or(|glob| glob.matches(facts.path));
        let method_ok = match (&self.method, self.route, &self.path) {
            (Some(glob), _, _) => glob.matches_ignore_case(facts.method),
            (None, None, None) => facts.method.eq_ignore_ascii_case("POST"),
            (None, _, _) => true,
        };
        route_ok
            && path_ok
            && method_ok
            && self.headers.iter().all(|(name, want)| {
                let mut values = facts
                    .headers
                    .get_all(name.as_str())
                    .iter()
                    .filter_map(header_text)
                    .peekable();
                match want {
                    None => values.peek().is_none(),
                    Some(glob) => values.any(|v| glob.matches(v)),
                }
            })
            && self.query.iter().all(|(name, want)| {
                let mut values = facts
                    .query
                    .iter()
                    .filter(|(k, _)| k == name)
                    .map(|(_, v)| v);
                match want {
                    None => values.next().is_none(),
                    Some(glob) => values.any(|v| glob.matches(v)),
                }
            })
            && self
                .filename
                .as_ref()
                .is_none_or(|glob| facts.filename.is_some_and(|f| glob.matches(f)))
            && self.content_type.as_ref().is_none_or(|glob| {
                facts
                    .content_type
                    .is_some_and(|c| glob.matches_ignore_case(c))
            })
            && self
                .size
                .as_ref()
                .is_none_or(|range| facts.size.is_some_and(|s| range.contains(s)))
    }
}

/// A rule that fired.
#[derive(Debug, Clone)]
pub(crate) struct Decision {
    pub(crate) id: String,
    pub(crate) rule: Arc<Rule>,
}

impl Decision {
    pub(crate) fn action(&self) -> &Action {
        &self.rule.action
    }
}

/// A rule with its counters, as listed by `GET /__admin/rules`.
#[derive(Debug, Clone, PartialEq, Serialize, serde::Deserialize)]
pub struct RuleStatus {
    /// The rule's id.
    pub id: String,
    /// The fixture file it came from, or `admin`.
    pub source: String,
    /// Requests whose `match` held (including those `after` let through).
    pub matched: u64,
    /// Times it fired.
    pub fired: u64,
    /// The rule itself.
    pub rule: Rule,
}

/// A rule in the engine. Its counters are atomics so that requests update
/// them without a lock; entries are shared between snapshots, so counters
/// survive other rules being added or removed.
#[derive(Debug)]
pub(crate) struct Entry {
    id: String,
    source: String,
    rule: Arc<Rule>,
    matched: AtomicU64,
    fired: AtomicU64,
    /// When the rule was added, in [`ADDED`]'s order: a request's near
    /// misses are rules that were loaded when it was decided.
    added: u64,
    /// With a shared state store: the name its counters have there (a
    /// run-time rule's, given when it was added; `None` for a fixture
    /// rule, whose name is made of the store's epoch, its file and its id).
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    shared_key: Option<Box<str>>,
}

/// Numbers rules as they are added (across every engine of the process:
/// only the order matters).
static ADDED: AtomicU64 = AtomicU64::new(1);

impl Entry {
    /// The rule with its counters now.
    pub(crate) fn status(&self) -> RuleStatus {
        RuleStatus {
            id: self.id.clone(),
            source: self.source.clone(),
            matched: self.matched.load(Ordering::SeqCst),
            fired: self.fired.load(Ordering::SeqCst),
            rule: (*self.rule).clone(),
        }
    }

    fn new(id: String, source: String, rule: Rule) -> Arc<Self> {
        Self::with_key(id, source, rule, None)
    }

    /// A run-time rule read from a shared state store, with the name of its
    /// counters there.
    #[cfg(feature = "redis")]
    pub(crate) fn shared(id: String, source: String, rule: Rule, key: String) -> Arc<Self> {
        Self::with_key(id, source, rule, Some(key.into()))
    }

    fn with_key(id: String, source: String, rule: Rule, shared_key: Option<Box<str>>) -> Arc<Self> {
        Arc::new(Entry {
            id,
            source,
            rule: Arc::new(rule),
            matched: AtomicU64::new(0),
            fired: AtomicU64::new(0),
            added: ADDED.fetch_add(1, Ordering::Relaxed),
            shared_key,
        })
    }

    /// The rule itself.
    #[cfg(feature = "redis")]
    pub(crate) fn rule(&self) -> &Rule {
        &self.rule
    }

    /// The name of its counters in a shared state store at `epoch` (see
    /// [`Entry::shared_key`]).
    #[cfg(feature = "redis")]
    pub(crate) fn key_at(&self, epoch: u64) -> String {
        match &self.shared_key {
            Some(key) => key.to_string(),
            None => format!("f{epoch}:{}:{}", self.source, self.id),
        }
    }

    /// Its status with counters read elsewhere (a shared state store).
    #[cfg(feature = "redis")]
    pub(crate) fn status_with(&self, matched: u64, fired: u64) -> RuleStatus {
        RuleStatus {
            id: self.id.clone(),
            source: self.source.clone(),
            matched,
            fired,
            rule: (*self.rule).clone(),
        }
    }

    /// Counts a matching request with this process's counters (see
    /// [`Counters::count`]).
    fn count_here(&self, draw: bool) -> Count {
        let when = &self.rule.when;
        let matched = self.matched.fetch_add(1, Ordering::SeqCst) + 1;
        if matched <= when.after {
            return Count::After(matched);
        }
        if let Some(times) = when.times {
            let fired = self.fired.load(Ordering::SeqCst);
            if fired >= times {
                return Count::Times(fired);
            }
        }
        if draw {
            return Count::Draw(0);
        }
        if self.claim_here() {
            Count::Fired
        } else {
            Count::Times(when.times.unwrap_or(0))
        }
    }

    /// Claims a firing: with `times`, only while some are left, so that
    /// concurrent requests never fire it more often.
    fn claim_here(&self) -> bool {
        match self.rule.when.times {
            Some(times) => self
                .fired
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |f| {
                    (f < times).then_some(f + 1)
                })
                .is_ok(),
            None => {
                self.fired.fetch_add(1, Ordering::SeqCst);
                true
            }
        }
    }
}

/// What counting a matching request found (its `when`, checked where the
/// counters live).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Count {
    /// Held back by `after`: this many matching requests so far.
    After(u64),
    /// Held back by `times`: it has fired this many times.
    Times(u64),
    /// It fires if a draw of its `probability` holds; the number names the
    /// draw (a shared store's sequence; 0 here).
    Draw(u64),
    /// It fired (the firing is claimed).
    Fired,
}

/// Where the rules' counters live: this process ([`Here`]) or a shared state
/// store. A counter is only ever changed by one atomic step, so that `after`
/// and `times` stay exact under concurrency.
pub(crate) trait Counters {
    /// Why the counters could not be read or changed.
    type Error;
    /// Counts a request whose `match` held, then checks `after` and `times`;
    /// when `draw` is false (no `probability`), also claims the firing.
    async fn count(&self, entry: &Entry, draw: bool) -> Result<Count, Self::Error>;
    /// Whether the draw numbered `seq` of probability `p` holds.
    fn draw(&self, p: f64, seq: u64) -> bool;
    /// Claims a firing once its draw held: false if `times` ran out meanwhile.
    async fn claim(&self, entry: &Entry) -> Result<bool, Self::Error>;
}

/// The counters of this process: atomics in the rules' entries, and the
/// engine's seeded RNG.
#[derive(Debug)]
pub(crate) struct Here<'a> {
    rng: &'a Mutex<StdRng>,
}

impl Counters for Here<'_> {
    type Error = std::convert::Infallible;

    async fn count(&self, entry: &Entry, draw: bool) -> Result<Count, Self::Error> {
        Ok(entry.count_here(draw))
    }

    fn draw(&self, p: f64, _seq: u64) -> bool {
        lock(self.rng).gen_bool(p)
    }

    async fn claim(&self, entry: &Entry) -> Result<bool, Self::Error> {
        Ok(entry.claim_here())
    }
}

/// Which rules a request can possibly match, per phase, so that a request
/// does not test every rule: a rule with a literal header condition (e.g.
/// `"x-api-key": "limited-1"`) is only tried when the request carries that
/// exact header value, and otherwise a rule with a literal path only for
/// requests to that path, and a rule for a route (an omitted route and path
/// is the upload endpoint) only for requests to that route. With 100k
/// upload rules loaded, a `/health` request then tests none of them instead
/// of taking ~5 ms. Positions are in evaluation order (admin, then fixtures).
#[derive(Debug, Default)]
struct Index {
    /// Per phase: rules tried for every request.
    unkeyed: [Vec<usize>; 3],
    /// Per phase: header name → literal value → rules.
    keyed: [HashMap<http::HeaderName, HashMap<String, Vec<usize>>>; 3],
    /// Per phase: literal path → rules (those not keyed by a header).
    by_path: [HashMap<String, Vec<usize>>; 3],
    /// Per phase: route → rules (those keyed neither by a header nor a path).
    by_route: [HashMap<RouteName, Vec<usize>>; 3],
}

/// What a rule is filed under in the index.
enum Key {
    Header(http::HeaderName, String),
    Path(String),
    Route(RouteName),
    None,
}

impl Index {
    fn build<'a>(entries: impl Iterator<Item = &'a Arc<Entry>>) -> Self {
        let mut index = Index::default();
        for (position, entry) in entries.enumerate() {
            let phase = entry.rule.phase as usize;
            let matcher = &entry.rule.matcher;
            let header = matcher.headers.iter().find_map(|(name, want)| {
                let literal = want.as_ref()?.literal()?;
                let name = http::HeaderName::from_bytes(name.as_bytes()).ok()?;
                Some(Key::Header(name, literal))
            });
            let path = matcher.path.as_ref().and_then(|glob| glob.literal());
            let key = match (header, path, matcher.route, &matcher.path) {
                (Some(header), _, _, _) => header,
                (None, Some(path), _, _) => Key::Path(path),
                (None, None, Some(route), _) => Key::Route(route),
                (None, None, None, None) => Key::Route(RouteName::Upload),
                (None, None, None, Some(_)) => Key::None,
            };
            match key {
                Key::Header(name, value) => index.keyed[phase]
                    .entry(name)
                    .or_default()
                    .entry(value)
                    .or_default()
                    .push(position),
                Key::Path(path) => index.by_path[phase].entry(path).or_default().push(position),
                Key::Route(route) => index.by_route[phase]
                    .entry(route)
                    .or_default()
                    .push(position),
                Key::None => index.unkeyed[phase].push(position),
            }
        }
        index
    }

    /// Positions of the rules worth testing for this request, in order: the
    /// unkeyed list merged with the lists of its path and of the literal
    /// header values it carries (each sorted), without copying them.
    fn candidates<'a>(
        &'a self,
        phase: Phase,
        facts: &RequestFacts<'_>,
    ) -> impl Iterator<Item = usize> + 'a {
        let phase = phase as usize;
        let headers = facts.headers;
        let mut lists: Vec<&'a [usize]> = vec![&self.unkeyed[phase]];
        if let Some(list) = self.by_path[phase].get(facts.path) {
            lists.push(list);
        }
        if let Some(list) = self.by_route[phase].get(&facts.route) {
            lists.push(list);
        }
        for (name, by_value) in &self.keyed[phase] {
            for value in headers.get_all(name) {
                if let Some(list) = header_text(value).and_then(|v| by_value.get(v)) {
                    lists.push(list);
                }
            }
        }
        let mut last = None;
        std::iter::from_fn(move || loop {
            let (i, &position) = lists
                .iter()
                .enumerate()
                .filter_map(|(i, list)| list.first().map(|p| (i, p)))
                .min_by_key(|(_, p)| **p)?;
            lists[i] = &lists[i][1..];
            // A header value sent twice names the same list twice.
            if last != Some(position) {
                last = Some(position);
                return Some(position);
            }
        })
    }
}

/// The rules as one request sees them: never changed once built, replaced
/// as a whole when the rules change.
#[derive(Debug, Default)]
struct Snapshot {
    /// Run-time rules, newest first.
    admin: Vec<Arc<Entry>>,
    fixtures: Vec<Arc<Entry>>,
    index: Index,
    /// Every header name some rule's `match.headers` names: the only
    /// headers a request's near misses need kept ([`near_miss::Seen`]).
    header_names: HashSet<http::HeaderName>,
    /// The latest [`Entry::added`] among the rules (0: none).
    newest: u64,
}

impl Snapshot {
    fn new(admin: Vec<Arc<Entry>>, fixtures: Vec<Arc<Entry>>) -> Arc<Self> {
        let index = Index::build(admin.iter().chain(fixtures.iter()));
        let mut header_names = HashSet::new();
        let mut newest = 0;
        for entry in admin.iter().chain(fixtures.iter()) {
            newest = newest.max(entry.added);
            for name in entry.rule.matcher.headers.keys() {
                if let Ok(name) = http::HeaderName::from_bytes(name.as_bytes()) {
                    header_names.insert(name);
                }
            }
        }
        Arc::new(Snapshot {
            admin,
            fixtures,
            index,
            header_names,
            newest,
        })
    }

    fn entries(&self) -> impl Iterator<Item = &Arc<Entry>> {
        self.admin.iter().chain(self.fixtures.iter())
    }

    fn at(&self, position: usize) -> Option<&Arc<Entry>> {
        match position.checked_sub(self.admin.len()) {
            None => self.admin.get(position),
            Some(p) => self.fixtures.get(p),
        }
    }
}

/// What changing the rules needs besides the snapshot.
#[derive(Debug, Default)]
struct Ids {
    /// Every id in the current snapshot: makes the uniqueness check O(1).
    in_use: HashSet<String>,
    next_generated: u64,
}

impl Ids {
    fn generate(&mut self) -> String {
        loop {
            self.next_generated += 1;
            let id = format!("rule-{}", self.next_generated);
            if self.in_use.insert(id.clone()) {
                return id;
            }
        }
    }

    fn fixture_entries(&mut self, files: Vec<loading::LoadedFile>) -> Vec<Arc<Entry>> {
        let mut out = Vec::new();
        for file in files {
            for rule in file.rules {
                let id = match &rule.id {
                    Some(id) => {
                        self.in_use.insert(id.clone());
                        id.clone()
                    }
                    None => self.generate(),
                };
                out.push(Entry::new(id, file.source.clone(), rule));
            }
        }
        out
    }
}

/// Why a run-time rule was not added.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddRuleError {
    /// The JSON is not a valid rule.
    #[error("{0}")]
    Invalid(FixtureError),
    /// Another rule already has this id.
    #[error("a rule with id \"{0}\" already exists")]
    DuplicateId(String),
}

/// Decides which rule fires; holds the rules, their counters and the RNG.
///
/// A request takes the current [`Snapshot`] (an `Arc` clone under a lock held
/// for nanoseconds) and matches outside any lock; counters are atomics, and
/// the RNG has its own lock, taken only for a rule with a `probability`. A
/// change builds a new snapshot while holding `changes` (which only other
/// changes wait for) and swaps it in, so no request waits behind an admin
/// call or another request's matching.
#[derive(Debug)]
pub(crate) struct RuleEngine {
    current: Mutex<Arc<Snapshot>>,
    changes: Mutex<Ids>,
    /// The fixture rules as last loaded, removed ones included: what a
    /// shared state store's view is made from ([`install_shared`](Self::install_shared)).
    loaded: Mutex<Vec<Arc<Entry>>>,
    rng: Mutex<StdRng>,
    sources: Vec<loading::FixtureSource>,
    seed: u64,
}

impl RuleEngine {
    /// Loads the fixtures (all or nothing).
    pub(crate) fn new(
        sources: Vec<loading::FixtureSource>,
        seed: u64,
    ) -> Result<Self, FixtureError> {
        let files = loading::load_sources(&sources)?;
        let mut ids = Ids::default();
        let fixtures = ids.fixture_entries(files);
        Ok(Self {
            loaded: Mutex::new(fixtures.clone()),
            current: Mutex::new(Snapshot::new(Vec::new(), fixtures)),
            changes: Mutex::new(ids),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            sources,
            seed,
        })
    }

    /// Where the fixture rules come from, in order.
    pub(crate) fn sources(&self) -> &[loading::FixtureSource] {
        &self.sources
    }

    /// The fixture files and directories (what `--watch` polls).
    pub(crate) fn fixture_paths(&self) -> Vec<PathBuf> {
        self.sources
            .iter()
            .filter_map(|s| match s {
                loading::FixtureSource::Path(path) => Some(path.clone()),
                loading::FixtureSource::Scenario(_) => None,
            })
            .collect()
    }

    fn snapshot(&self) -> Arc<Snapshot> {
        Arc::clone(&lock(&self.current))
    }

    /// Installs a new snapshot; the old one is freed after the lock is released.
    fn install(&self, snapshot: Arc<Snapshot>) {
        let old = std::mem::replace(&mut *lock(&self.current), snapshot);
        drop(old);
    }

    /// The first rule of `phase` whose match and `when` hold, with counters updated.
    /// (The routes call [`decide_with`](Self::decide_with); tests call this.)
    #[cfg(test)]
    pub(crate) fn decide(&self, phase: Phase, facts: &RequestFacts<'_>) -> Option<Decision> {
        self.decide_seen(phase, facts, None)
    }

    /// `decide` with this process's counters, noting in `seen` what the
    /// rules saw and which matching rules their `when` held back.
    #[cfg(test)]
    pub(crate) fn decide_seen(
        &self,
        phase: Phase,
        facts: &RequestFacts<'_>,
        seen: Option<&mut near_miss::Seen>,
    ) -> Option<Decision> {
        use futures_util::FutureExt;
        let decided = self
            .decide_with(phase, facts, seen, &self.here())
            .now_or_never();
        let Some(Ok(decision)) = decided else {
            unreachable!("this process's counters never wait")
        };
        decision
    }

    /// This process's counters.
    pub(crate) fn here(&self) -> Here<'_> {
        Here { rng: &self.rng }
    }

    /// The first rule of `phase` whose match and `when` hold, its firing
    /// claimed in `counters`; notes in `seen` what the rules saw and which
    /// matching rules their `when` held back, for the near misses.
    pub(crate) async fn decide_with<C: Counters>(
        &self,
        phase: Phase,
        facts: &RequestFacts<'_>,
        mut seen: Option<&mut near_miss::Seen>,
        counters: &C,
    ) -> Result<Option<Decision>, C::Error> {
        let snapshot = self.snapshot();
        if let Some(seen) = seen.as_deref_mut() {
            seen.note(phase, facts, &snapshot);
        }
        let mut held_back = |id: &str, why: near_miss::FailedCondition| {
            if let Some(seen) = seen.as_deref_mut() {
                seen.held_back(id, why);
            }
        };
        for position in snapshot.index.candidates(phase, facts) {
            let Some(entry) = snapshot.at(position) else {
                continue;
            };
            let rule = &entry.rule;
            if rule.phase != phase || !rule.matcher.matches(facts) {
                continue;
            }
            let p = rule.when.probability.value();
            let times = rule.when.times.unwrap_or(0);
            match counters.count(entry, p < 1.0).await? {
                Count::After(matched) => {
                    held_back(&entry.id, near_miss::after_miss(rule.when.after, matched));
                    continue;
                }
                Count::Times(fired) => {
                    held_back(&entry.id, near_miss::times_miss(times, fired));
                    continue;
                }
                Count::Draw(seq) => {
                    if !counters.draw(p, seq) {
                        held_back(&entry.id, near_miss::probability_miss(p));
                        continue;
                    }
                    if !counters.claim(entry).await? {
                        held_back(&entry.id, near_miss::times_miss(times, times));
                        continue;
                    }
                }
                Count::Fired => {}
            }
            return Ok(Some(Decision {
                id: entry.id.clone(),
                rule: Arc::clone(&entry.rule),
            }));
        }
        Ok(None)
    }

    /// Adds run-time rules before all others: a batch keeps its own order and
    /// goes before older rules. All or nothing.
    pub(crate) fn add(&self, rules: Vec<Rule>) -> Result<Vec<String>, AddRuleError> {
        self.add_from(rules, "admin")
    }

    /// [`add`](Self::add), with the `source` the rules are listed with
    /// (`scenario:NAME` for a scenario switched on at run time).
    pub(crate) fn add_from(
        &self,
        rules: Vec<Rule>,
        source: &str,
    ) -> Result<Vec<String>, AddRuleError> {
        let mut ids = lock(&self.changes);
        let mut batch: HashSet<&str> = HashSet::new();
        for rule in &rules {
            if let Some(id) = rule.id.as_deref() {
                if ids.in_use.contains(id) || !batch.insert(id) {
                    return Err(AddRuleError::DuplicateId(id.to_owned()));
                }
            }
        }
        let current = self.snapshot();
        let mut added = Vec::with_capacity(rules.len());
        let mut admin = Vec::with_capacity(rules.len() + current.admin.len());
        for rule in rules {
            let id = match &rule.id {
                Some(id) => {
                    ids.in_use.insert(id.clone());
                    id.clone()
                }
                None => ids.generate(),
            };
            added.push(id.clone());
            admin.push(Entry::new(id, source.to_owned(), rule));
        }
        admin.extend(current.admin.iter().cloned());
        self.install(Snapshot::new(admin, current.fixtures.clone()));
        Ok(added)
    }

    /// Removes one rule (run-time or fixture) by id.
    pub(crate) fn remove(&self, id: &str) -> bool {
        let mut ids = lock(&self.changes);
        if !ids.in_use.remove(id) {
            return false;
        }
        let current = self.snapshot();
        let keep = |list: &[Arc<Entry>]| list.iter().filter(|e| e.id != id).cloned().collect();
        self.install(Snapshot::new(keep(&current.admin), keep(&current.fixtures)));
        true
    }

    /// Removes every rule, fixture rules included (until reset or reload);
    /// returns how many there were.
    pub(crate) fn clear(&self) -> usize {
        let mut ids = lock(&self.changes);
        ids.in_use.clear();
        let current = self.snapshot();
        self.install(Arc::default());
        current.admin.len() + current.fixtures.len()
    }

    /// Rules in evaluation order, with counters.
    pub(crate) fn list(&self) -> Vec<RuleStatus> {
        self.snapshot().entries().map(|e| e.status()).collect()
    }

    /// Rules in evaluation order, shared: listing them copies pointers, and
    /// each one's status is read as it is written out.
    pub(crate) fn entries(&self) -> Vec<Arc<Entry>> {
        self.snapshot().entries().cloned().collect()
    }

    /// Replaces the fixture rules (fresh counters); run-time rules stay.
    pub(crate) fn replace_fixtures(
        &self,
        files: Vec<loading::LoadedFile>,
    ) -> Result<(), FixtureError> {
        let mut ids = lock(&self.changes);
        let current = self.snapshot();
        // A reloaded fixture must not take an id a run-time rule holds.
        let admin_ids: HashSet<&str> = current.admin.iter().map(|e| e.id.as_str()).collect();
        for file in &files {
            for rule in &file.rules {
                if let Some(id) = rule.id.as_deref() {
                    if admin_ids.contains(id) {
                        return Err(FixtureError::whole(
                            &file.source,
                            format!("rule id \"{id}\" is already used by a rule added through the admin API"),
                        ));
                    }
                }
            }
        }
        for entry in &current.fixtures {
            ids.in_use.remove(&entry.id);
        }
        let fixtures = ids.fixture_entries(files);
        lock(&self.loaded).clone_from(&fixtures);
        self.install(Snapshot::new(current.admin.clone(), fixtures));
        Ok(())
    }

    /// Back to the state at start: run-time rules removed, fixtures reloaded
    /// from disk, counters zeroed, the RNG re-seeded.
    pub(crate) fn reset(&self) -> Result<(), FixtureError> {
        let files = loading::load_sources(&self.sources)?;
        let mut ids = lock(&self.changes);
        *ids = Ids::default();
        let fixtures = ids.fixture_entries(files);
        lock(&self.loaded).clone_from(&fixtures);
        self.install(Snapshot::new(Vec::new(), fixtures));
        *lock(&self.rng) = StdRng::seed_from_u64(self.seed);
        Ok(())
    }

    /// The ids of the fixture rules as loaded (removed ones included).
    #[cfg(feature = "redis")]
    pub(crate) fn fixture_ids(&self) -> Vec<String> {
        lock(&self.loaded).iter().map(|e| e.id.clone()).collect()
    }

    /// Whether `id` names a fixture rule in the current rules.
    #[cfg(feature = "redis")]
    pub(crate) fn has_fixture(&self, id: &str) -> bool {
        self.snapshot().fixtures.iter().any(|e| e.id == id)
    }

    /// Installs the rules a shared state store holds: its run-time rules
    /// (newest first), then this process's fixture rules but those removed
    /// through the store (every one when `cleared`).
    #[cfg(feature = "redis")]
    pub(crate) fn install_shared(
        &self,
        admin: Vec<Arc<Entry>>,
        removed: &HashSet<String>,
        cleared: bool,
    ) {
        let _changes = lock(&self.changes);
        let fixtures = if cleared {
            Vec::new()
        } else {
            lock(&self.loaded)
                .iter()
                .filter(|e| !removed.contains(&e.id))
                .cloned()
                .collect()
        };
        self.install(Snapshot::new(admin, fixtures));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_text_agrees_with_to_str() {
        let values: [&[u8]; 6] = [
            b"plain",
            b"tab\there",
            b"",
            b"caf\xc3\xa9",
            b"\xff",
            b"a b ~",
        ];
        for bytes in values {
            let value = http::HeaderValue::from_bytes(bytes).unwrap();
            assert_eq!(header_text(&value), value.to_str().ok(), "{bytes:?}");
        }
    }
    use http::HeaderMap;

    fn engine(rules: &[&str]) -> RuleEngine {
        let e = RuleEngine::new(Vec::new(), 7).unwrap();
        let parsed = rules
            .iter()
            .map(|r| serde_json::from_str::<Rule>(r).unwrap())
            .collect();
        e.add(parsed).unwrap();
        e
    }

    fn upload_facts<'a>(headers: &'a HeaderMap, query: &'a [(String, String)]) -> RequestFacts<'a> {
        RequestFacts {
            route: RouteName::Upload,
            method: "POST",
            path: crate::UPLOAD_PATH,
            headers,
            query,
            filename: Some("clip.mp4"),
            content_type: Some("video/mp4"),
            size: Some(10),
        }
    }

    #[test]
    fn after_and_times_count_matching_requests() {
        let e = engine(&[r#"{"id":"r","respond":{"status":503},"when":{"after":1,"times":2}}"#]);
        let h = HeaderMap::new();
        let fired: Vec<bool> = (0..5)
            .map(|_| e.decide(Phase::Request, &upload_facts(&h, &[])).is_some())
            .collect();
        assert_eq!(fired, [false, true, true, false, false]);
        let status = &e.list()[0];
        assert_eq!((status.matched, status.fired), (5, 2));
    }

    #[test]
    fn times_and_after_are_exact_under_concurrent_requests() {
        let e = engine(&[
            r#"{"id":"once","respond":{"status":503},"when":{"after":3,"times":1}}"#,
            r#"{"id":"five","respond":{"status":500},"when":{"times":5}}"#,
        ]);
        let fired: Vec<String> = std::thread::scope(|s| {
            let threads: Vec<_> = (0..8)
                .map(|_| {
                    s.spawn(|| {
                        let h = HeaderMap::new();
                        (0..500)
                            .filter_map(|_| e.decide(Phase::Request, &upload_facts(&h, &[])))
                            .map(|d| d.id)
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            threads
                .into_iter()
                .flat_map(|t| t.join().unwrap())
                .collect()
        });
        assert_eq!(fired.iter().filter(|id| *id == "once").count(), 1);
        assert_eq!(fired.iter().filter(|id| *id == "five").count(), 5);
        let list = e.list();
        assert_eq!((list[0].matched, list[0].fired), (4_000, 1));
        assert_eq!((list[1].matched, list[1].fired), (4_000 - 1, 5));
    }

    #[test]
    fn counters_survive_other_rules_changing() {
        let e = engine(&[r#"{"id":"r","respond":{"status":503},"when":{"times":2}}"#]);
        let h = HeaderMap::new();
        assert!(e.decide(Phase::Request, &upload_facts(&h, &[])).is_some());
        e.add(vec![Rule::respond(500).with_id("other")]).unwrap();
        assert!(e.remove("other"));
        assert!(e.decide(Phase::Request, &upload_facts(&h, &[])).is_some());
        assert!(e.decide(Phase::Request, &upload_facts(&h, &[])).is_none());
        assert_eq!(e.list()[0].fired, 2);
        // Ids freed by removing or clearing can be used again.
        assert_eq!(e.clear(), 1);
        assert!(e.add(vec![Rule::respond(500).with_id("r")]).is_ok());
        assert_eq!(
            e.add(vec![
                Rule::respond(500).with_id("x"),
                Rule::respond(500).with_id("x")
            ]),
            Err(AddRuleError::DuplicateId("x".into()))
        );
        assert_eq!(e.list().len(), 1, "a refused batch adds nothing");
    }

    #[test]
    fn rules_are_decided_only_in_their_phase() {
        let e = engine(&[r#"{"respond":{"status":422},"match":{"filename":"*.mp4"}}"#]);
        let h = HeaderMap::new();
        assert!(e.decide(Phase::Request, &upload_facts(&h, &[])).is_none());
        assert!(e.decide(Phase::Upload, &upload_facts(&h, &[])).is_some());
    }

    #[test]
    fn header_and_query_conditions() {
        let e = engine(&[
            r#"{"id":"absent","respond":{"status":401},"match":{"headers":{"X-Api-Key":null}}}"#,
            r#"{"id":"limited","respond":{"status":429},"match":{"headers":{"x-api-key":"limited-*"},"query":{"workspace_uuid":"ws-*"}}}"#,
        ]);
        let mut h = HeaderMap::new();
        let none: Vec<(String, String)> = vec![];
        assert_eq!(
            e.decide(Phase::Request, &upload_facts(&h, &none))
                .map(|d| d.id)
                .as_deref(),
            Some("absent")
        );
        h.insert("x-api-key", http::HeaderValue::from_static("limited-1"));
        assert!(e.decide(Phase::Request, &upload_facts(&h, &none)).is_none());
        let q = vec![("workspace_uuid".to_owned(), "ws-9".to_owned())];
        assert_eq!(
            e.decide(Phase::Request, &upload_facts(&h, &q))
                .map(|d| d.id)
                .as_deref(),
            Some("limited")
        );
    }

    #[test]
    fn literal_header_rules_are_indexed_without_changing_the_order() {
        let mut rules = vec![r#"{"id":"wild","respond":{"status":500},"match":{"headers":{"x-api-key":"k*"}},"when":{"after":2}}"#.to_owned()];
        for i in 0..50 {
            rules.push(format!(r#"{{"id":"r{i}","respond":{{"status":429}},"match":{{"headers":{{"X-Api-Key":"key-{i}"}}}}}}"#));
        }
        rules.push(r#"{"id":"any","pass":{}}"#.to_owned());
        let refs: Vec<&str> = rules.iter().map(String::as_str).collect();
        let e = engine(&refs);
        let mut h = HeaderMap::new();
        let fired = |h: &HeaderMap| {
            e.decide(Phase::Request, &upload_facts(h, &[]))
                .map(|d| d.id)
        };
        assert_eq!(fired(&h).as_deref(), Some("any"));
        h.insert("x-api-key", http::HeaderValue::from_static("key-7"));
        assert_eq!(fired(&h).as_deref(), Some("r7"));
        h.insert("x-api-key", http::HeaderValue::from_static("key-49"));
        assert_eq!(fired(&h).as_deref(), Some("r49"));
        h.insert("x-api-key", http::HeaderValue::from_static("key-50"));
        // `wild` comes first and now matches: its counter still runs in order.
        assert_eq!(fired(&h).as_deref(), Some("wild"));
        let wild = &e.list()[0];
        assert_eq!((wild.matched, wild.fired), (3, 1));
        // Changing the rules rebuilds the index.
        assert!(e.remove("wild"));
        assert_eq!(fired(&h).as_deref(), Some("any"));
    }

    #[test]
    fn a_request_tests_only_rules_for_its_path() {
        let mut rules: Vec<String> = (0..1_000)
            .map(|i| format!(r#"{{"id":"u{i}","respond":{{"status":500}},"when":{{"times":0}}}}"#))
            .collect();
        rules.push(r#"{"id":"h","respond":{"status":503},"match":{"path":"/health"}}"#.into());
        rules.push(r#"{"id":"any","respond":{"status":502},"match":{"path":"/he*"}}"#.into());
        let refs: Vec<&str> = rules.iter().map(String::as_str).collect();
        let e = engine(&refs);
        let h = HeaderMap::new();
        let health = RequestFacts {
            route: RouteName::Health,
            method: "GET",
            path: "/health",
            headers: &h,
            query: &[],
            filename: None,
            content_type: None,
            size: None,
        };
        let snapshot = e.snapshot();
        let tried: Vec<usize> = snapshot.index.candidates(Phase::Request, &health).collect();
        assert_eq!(tried, [1_000, 1_001]);
        assert_eq!(
            e.decide(Phase::Request, &health).map(|d| d.id).as_deref(),
            Some("h")
        );
        let upload = e
            .snapshot()
            .index
            .candidates(Phase::Request, &upload_facts(&h, &[]))
            .count();
        assert_eq!(upload, 1_001, "the upload rules and the wildcard one");
    }

    #[test]
    fn omitted_path_means_the_upload_endpoint() {
        let e = engine(&[
            r#"{"respond":{"status":503}}"#,
            r#"{"id":"h","respond":{"status":503},"match":{"path":"/health"}}"#,
        ]);
        let h = HeaderMap::new();
        let facts = RequestFacts {
            route: RouteName::Health,
            method: "GET",
            path: "/health",
            headers: &h,
            query: &[],
            filename: None,
            content_type: None,
            size: None,
        };
        assert_eq!(
            e.decide(Phase::Request, &facts).map(|d| d.id).as_deref(),
            Some("h")
        );
    }

    #[test]
    fn a_rule_can_name_its_route() {
        let e = engine(&[
            r#"{"id":"d","respond":{"status":503},"match":{"route":"download"}}"#,
            r#"{"id":"h","respond":{"status":502},"match":{"route":"health","method":"HEAD"}}"#,
        ]);
        let h = HeaderMap::new();
        let facts = |route, method| RequestFacts {
            route,
            method,
            path: "/somewhere",
            headers: &h,
            query: &[],
            filename: None,
            content_type: None,
            size: None,
        };
        let fired = |route, method| {
            e.decide(Phase::Request, &facts(route, method))
                .map(|d| d.id)
        };
        assert_eq!(fired(RouteName::Download, "GET").as_deref(), Some("d"));
        assert_eq!(fired(RouteName::Download, "HEAD").as_deref(), Some("d"));
        assert_eq!(fired(RouteName::Health, "HEAD").as_deref(), Some("h"));
        assert_eq!(fired(RouteName::Health, "GET"), None);
        assert_eq!(fired(RouteName::Upload, "POST"), None);
    }

    #[test]
    fn same_seed_same_sequence() {
        let run = || {
            let e = engine(&[r#"{"respond":{"status":500},"when":{"probability":0.3}}"#]);
            let h = HeaderMap::new();
            (0..200)
                .map(|_| e.decide(Phase::Request, &upload_facts(&h, &[])).is_some())
                .collect::<Vec<_>>()
        };
        let a = run();
        assert_eq!(a, run());
        let fired = a.iter().filter(|f| **f).count();
        assert!((30..=90).contains(&fired), "{fired}");
    }

    #[test]
    fn newest_admin_rule_comes_first_and_ids_are_unique() {
        let e = RuleEngine::new(Vec::new(), 1).unwrap();
        e.add(vec![Rule::respond(500).with_id("old")]).unwrap();
        e.add(vec![Rule::respond(503).with_id("new")]).unwrap();
        let ids: Vec<String> = e.list().into_iter().map(|s| s.id).collect();
        assert_eq!(ids, ["new", "old"]);
        assert_eq!(
            e.add(vec![Rule::respond(500).with_id("old")]),
            Err(AddRuleError::DuplicateId("old".into()))
        );
        assert!(e.remove("old"));
        assert!(!e.remove("old"));
    }
}
