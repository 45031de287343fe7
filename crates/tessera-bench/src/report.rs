//! Results: percentiles, one scenario's row, and the report as a table or as JSON.
use std::{collections::BTreeMap, time::Duration};

use serde_json::json;

use crate::{
    args::{MIX, Op, describe_mix, mix_json},
    rss::mib,
};

/// Nearest-rank percentile of sorted samples; 0 when there are none.
pub fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Nanoseconds as milliseconds.
pub fn ms(ns: u64) -> f64 {
    ns as f64 / 1e6
}

/// A number with three significant digits (whole numbers from 1000 up).
pub fn sig3(x: f64) -> String {
    if x == 0.0 || !x.is_finite() {
        return format!("{x}");
    }
    let magnitude = x.abs().log10().floor() as i32;
    let decimals = (2 - magnitude).max(0) as usize;
    format!("{x:.decimals$}")
}

fn ratio(x: f64, base: f64) -> f64 {
    if base > 0.0 { x / base } else { f64::NAN }
}

/// `key=n key=n ...`, or `-` when there is nothing.
pub fn counts_text(counts: &BTreeMap<String, u64>) -> String {
    if counts.is_empty() {
        return "-".into();
    }
    counts
        .iter()
        .map(|(k, n)| format!("{k}={n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// A progress or summary line: on stdout, or on stderr when stdout carries the JSON.
pub fn say(json: bool, line: String) {
    if json {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
}

pub struct ScenarioResult {
    pub name: &'static str,
    /// Requests completed in the window, OK or not.
    pub requests: u64,
    pub window: Duration,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
    pub errors: BTreeMap<String, u64>,
    /// VmRSS once the scenario's own setup (users) is done, and after its window.
    pub rss_kib_before: Option<u64>,
    pub rss_kib: Option<u64>,
    /// A line of its own under the table.
    pub note: Option<String>,
}

impl ScenarioResult {
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.window.as_secs_f64()
    }

    fn non_ok(&self) -> u64 {
        self.errors.values().sum()
    }

    pub fn error_summary(&self) -> String {
        counts_text(&self.errors)
    }
}

pub struct Report<'a> {
    pub cpus: usize,
    pub database: &'a str,
    pub in_process: bool,
    pub connections: usize,
    pub concurrency: usize,
    pub duration: Duration,
    pub warmup: Duration,
    pub users: usize,
    pub distinct_setup: Option<(usize, Duration)>,
    pub rss_at_rest: Option<u64>,
    pub results: &'a [ScenarioResult],
}

impl Report<'_> {
    fn baseline(&self) -> Option<&ScenarioResult> {
        self.results.iter().find(|r| r.name == "health")
    }

    pub fn print_table(&self) {
        println!(
            "tessera-bench: {} CPUs, database {}, server {}, {} connections, {} in flight, {} warm-up + {} per scenario",
            self.cpus,
            self.database,
            if self.in_process {
                "in-process"
            } else {
                "external (target)"
            },
            self.connections,
            self.concurrency,
            humantime::format_duration(self.warmup),
            humantime::format_duration(self.duration),
        );
        println!(
            "mixed = {}; {} users; ratios (x) are to the health baseline",
            describe_mix(&MIX, Op::name),
            self.users
        );
        if let Some((n, took)) = self.distinct_setup {
            println!(
                "distinct tokens: {n} issued in {:.2}s ({:.0}/s)",
                took.as_secs_f64(),
                n as f64 / took.as_secs_f64().max(1e-9)
            );
        }
        if self.in_process {
            println!(
                "RSS (VmRSS of this process: server + load generator) at rest after setup: {} MiB; per scenario: after its setup -> after its window",
                mib(self.rss_at_rest)
            );
        }
        let Some(base) = self.baseline() else {
            return;
        };
        println!(
            "{:<20} {:>16} {:>16} {:>16} {:>16} {:>11}  errors",
            "scenario", "req/s (x)", "p50 ms (x)", "p99 ms (x)", "max ms (x)", "RSS MiB"
        );
        let cell = |v: f64, b: f64| format!("{} ({})", sig3(v), sig3(ratio(v, b)));
        for r in self.results {
            println!(
                "{:<20} {:>16} {:>16} {:>16} {:>16} {:>11}  {}",
                r.name,
                cell(r.rate(), base.rate()),
                cell(r.p50_ms, base.p50_ms),
                cell(r.p99_ms, base.p99_ms),
                cell(r.max_ms, base.max_ms),
                if self.in_process {
                    format!("{}->{}", mib(r.rss_kib_before), mib(r.rss_kib))
                } else {
                    "-".into()
                },
                r.error_summary()
            );
        }
        for note in self.results.iter().filter_map(|r| r.note.as_ref()) {
            println!("{note}");
        }
    }

    pub fn print_findings(&self, json: bool) {
        for r in self.results.iter().filter(|r| r.non_ok() > 0) {
            say(
                json,
                format!(
                    "!!! FINDING: {}: {} of {} requests were not OK: {}",
                    r.name,
                    r.non_ok(),
                    r.requests,
                    r.error_summary()
                ),
            );
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        let base = self.baseline();
        let scenarios: Vec<_> = self
            .results
            .iter()
            .map(|r| {
                let vs = |f: fn(&ScenarioResult) -> f64| {
                    base.map(|b| ratio(f(r), f(b))).filter(|x| x.is_finite())
                };
                json!({
                    "scenario": r.name,
                    "requests": r.requests,
                    "non_ok": r.non_ok(),
                    "req_per_s": r.rate(),
                    "p50_ms": r.p50_ms,
                    "p99_ms": r.p99_ms,
                    "max_ms": r.max_ms,
                    "ratio_to_health": {
                        "req_per_s": vs(ScenarioResult::rate),
                        "p50_ms": vs(|r| r.p50_ms),
                        "p99_ms": vs(|r| r.p99_ms),
                        "max_ms": vs(|r| r.max_ms),
                    },
                    "errors": r.errors,
                    "rss_kib_before": if self.in_process { r.rss_kib_before } else { None },
                    "rss_kib_after": if self.in_process { r.rss_kib } else { None },
                })
            })
            .collect();
        json!({
            "cpus": self.cpus,
            "database": self.database,
            "server": if self.in_process { "in-process" } else { "target" },
            "connections": self.connections,
            "concurrency": self.concurrency,
            "duration_s": self.duration.as_secs_f64(),
            "warmup_s": self.warmup.as_secs_f64(),
            "users": self.users,
            "mixed_weights_percent": mix_json(&MIX, Op::name),
            "distinct_tokens": self.distinct_setup.map(|(n, took)| json!({
                "count": n,
                "issue_s": took.as_secs_f64(),
            })),
            "rss_kib_at_rest": if self.in_process { self.rss_at_rest } else { None },
            "scenarios": scenarios,
        })
    }
}
