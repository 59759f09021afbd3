//! `GET /metrics`: the server's metrics in the Prometheus text format
//! (version 0.0.4), for the operator of a shared instance.
//!
//! Counted as requests end (in the one place that journals them): requests
//! by route and status, their durations, uploaded bytes, faults by kind.
//! Read when scraped: the rules' matched and fired counters, the journal's
//! size, the stored files. The exposition is `prometheus-client`'s.

use std::time::Duration;

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue, LabelValueEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::files::Files;
use crate::rules::RuleStatus;

/// The `Content-Type` of the answer.
pub(crate) const CONTENT_TYPE: &str = prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// Rules whose `matched` and `fired` a scrape itemizes, at most (the first
/// loaded): a series per rule is what Prometheus warns against for
/// unbounded sets, and 100k rules would make each scrape ~10 MB of text (two
/// lines of ~50 bytes per rule). The rest
/// are counted in `rules_not_itemized` (and in `rules`, `rules_never_fired`).
const MAX_RULE_SERIES: usize = 1000;

/// A request's labels: the route's name (a rule's `match.route`, or
/// `admin`, `preflight`, `unrouted` for a path or method the table does not
/// serve), its method and its status. Nothing in them is allocated: they are
/// made for every request.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    status: Status,
}

/// The status sent, or `none` when no answer was (a reset, a hang, a
/// client that went away).
#[derive(Debug, Clone, Copy, Hash, PartialEq, Eq)]
struct Status(Option<u16>);

impl EncodeLabelValue for Status {
    fn encode(&self, encoder: &mut LabelValueEncoder<'_>) -> Result<(), std::fmt::Error> {
        match self.0 {
            Some(status) => status.encode(encoder),
            None => "none".encode(encoder),
        }
    }
}

/// A method's label: the standard ones by name, any other as `other` (a
/// client cannot grow the label set).
fn method_label(method: &http::Method) -> &'static str {
    use http::Method;
    match *method {
        Method::GET => "GET",
        Method::HEAD => "HEAD",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::DELETE => "DELETE",
        Method::OPTIONS => "OPTIONS",
        Method::PATCH => "PATCH",
        _ => "other",
    }
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    route: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FaultLabels {
    kind: &'static str,
}

#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    rule: String,
}

/// Request durations' buckets: 1 ms to ~33 s, doubling.
fn duration_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 16))
}

/// What is counted as requests end; the rest is read when scraped.
#[derive(Debug)]
pub(crate) struct Metrics {
    requests: Family<RequestLabels, Counter>,
    durations: Family<RouteLabels, Histogram>,
    uploaded_bytes: Counter,
    faults: Family<FaultLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            requests: Family::default(),
            durations: Family::new_with_constructor(duration_histogram),
            uploaded_bytes: Counter::default(),
            faults: Family::default(),
        }
    }
}

/// One ended request, as counted.
#[derive(Debug)]
pub(crate) struct Ended<'a> {
    pub(crate) route: &'static str,
    pub(crate) method: &'a http::Method,
    pub(crate) status: Option<u16>,
    pub(crate) elapsed: Duration,
    /// The network fault a rule injected (`reset`, `hang`, `truncate`).
    pub(crate) fault: Option<&'static str>,
    /// The size of the file it stored.
    pub(crate) stored_bytes: Option<u64>,
}

impl Metrics {
    /// Counts a request that ended.
    pub(crate) fn ended(&self, request: &Ended<'_>) {
        self.requests
            .get_or_create(&RequestLabels {
                route: request.route,
                method: method_label(request.method),
                status: Status(request.status),
            })
            .inc();
        self.durations
            .get_or_create(&RouteLabels {
                route: request.route,
            })
            .observe(request.elapsed.as_secs_f64());
        if let Some(kind) = request.fault {
            self.faults.get_or_create(&FaultLabels { kind }).inc();
        }
        if let Some(bytes) = request.stored_bytes {
            self.uploaded_bytes.inc_by(bytes);
        }
    }

    /// The text of a scrape: the counters above, and what the rules (with
    /// their counters, read where they live), the journal and the index of
    /// stored files hold now, and the shared state store's errors so far.
    pub(crate) fn render(
        &self,
        rules: Vec<RuleStatus>,
        journal: (u64, u64),
        files: &Files,
        store_errors: u64,
    ) -> String {
        let mut registry = Registry::with_prefix("aymara_mock");
        registry.register(
            "requests",
            "Requests answered (or ended without an answer: status none), by route, method and status",
            self.requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time from a request's arrival to its end, by route",
            self.durations.clone(),
        );
        registry.register(
            "uploaded_bytes",
            "Bytes of the files stored (multipart uploads, presigned PUTs, remote fetches)",
            self.uploaded_bytes.clone(),
        );
        registry.register(
            "faults_injected",
            "Network faults injected by rules, by kind",
            self.faults.clone(),
        );
        registry.register(
            "state_store_errors",
            "Errors of the shared state store (0 with the state in memory)",
            counter_of(store_errors),
        );

        let matched = Family::<RuleLabels, Counter>::default();
        let fired = Family::<RuleLabels, Counter>::default();
        let (mut loaded, mut never_fired, mut not_itemized) = (0_i64, 0_i64, 0_i64);
        for (n, rule) in rules.into_iter().enumerate() {
            loaded += 1;
            never_fired += i64::from(rule.fired == 0);
            if n >= MAX_RULE_SERIES {
                not_itemized += 1;
                continue;
            }
            let labels = RuleLabels { rule: rule.id };
            matched.get_or_create(&labels).inc_by(rule.matched);
            fired.get_or_create(&labels).inc_by(rule.fired);
        }
        registry.register(
            "rule_matched",
            "Requests each loaded rule matched (before `after` and `times`)",
            matched,
        );
        registry.register("rule_fired", "Times each loaded rule fired", fired);
        registry.register("rules", "Rules loaded", gauge(loaded));
        registry.register(
            "rules_never_fired",
            "Rules loaded that have not fired yet",
            gauge(never_fired),
        );
        registry.register(
            "rules_not_itemized",
            "Rules loaded after the first 1000, whose counters rule_matched and rule_fired leave out",
            gauge(not_itemized),
        );

        let (entries, bytes) = journal;
        registry.register(
            "journal_entries",
            "Requests kept in the journal",
            gauge_of(entries),
        );
        registry.register(
            "journal_bytes",
            "Bytes the journal's entries take (bounded by --journal-bytes)",
            gauge_of(bytes),
        );
        let (files, file_bytes) = files.totals();
        registry.register("stored_files", "Files stored", gauge_of(files as u64));
        registry.register(
            "stored_bytes",
            "Bytes of the files stored",
            gauge_of(file_bytes),
        );

        let mut text = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut text, &registry);
        text
    }
}

fn counter_of(value: u64) -> Counter {
    let counter = Counter::default();
    counter.inc_by(value);
    counter
}

fn gauge(value: i64) -> Gauge {
    let gauge = Gauge::default();
    gauge.set(value);
    gauge
}

fn gauge_of(value: u64) -> Gauge {
    gauge(i64::try_from(value).unwrap_or(i64::MAX))
}
