//! What the soak samples and how it is judged: the sample lines, the table sizes, the
//! error rate and the RSS growth after the warm-up.
use std::{collections::BTreeMap, time::Duration};

use serde_json::json;
use tessera::store::{Store, TableSizes};

use crate::{
    engine::Tally,
    report::{counts_text, say},
    rss::{mib, mib_f64},
};

/// Error rate at which the soak fails.
const MAX_ERROR_RATE: f64 = 0.001;

/// One sample line.
pub(super) struct Sample {
    pub(super) at: Duration,
    pub(super) req_per_s: f64,
    pub(super) requests: u64,
    pub(super) errors: u64,
    pub(super) rss_kib: Option<u64>,
    pub(super) rows: Option<TableSizes>,
}

pub(super) fn rows_text(rows: Option<&TableSizes>) -> String {
    rows.map_or_else(
        || "rows n/a".into(),
        |r| {
            format!(
                "sessions {} refresh_tokens {} revocation_events {} login_throttles {}",
                r.sessions, r.refresh_tokens, r.revocation_events, r.login_throttles
            )
        },
    )
}

pub(super) fn rows_json(rows: Option<&TableSizes>) -> serde_json::Value {
    rows.map_or(serde_json::Value::Null, |r| {
        json!({
            "sessions": r.sessions,
            "refresh_tokens": r.refresh_tokens,
            "revocation_events": r.revocation_events,
            "login_throttles": r.login_throttles,
        })
    })
}

pub(super) async fn table_sizes(store: &Store) -> Option<TableSizes> {
    match store.table_sizes().await {
        Ok(sizes) => Some(sizes),
        Err(e) => {
            eprintln!("tessera-bench: warning: cannot count rows: {e}");
            None
        }
    }
}

pub(super) struct Summary {
    pub(super) requests: u64,
    pub(super) errors: u64,
    pub(super) error_rate: f64,
    pub(super) errors_by_key: BTreeMap<String, u64>,
    pub(super) baseline_at: Option<Duration>,
    pub(super) first_kib: Option<u64>,
    pub(super) max_kib: Option<u64>,
    pub(super) last_kib: Option<u64>,
    pub(super) baseline_peak: Option<f64>,
    pub(super) end_peak: Option<f64>,
    pub(super) growth: Option<f64>,
    pub(super) failures: Vec<String>,
}

impl Summary {
    pub(super) fn of(
        samples: &[Sample],
        tally: &Tally,
        warmup: Duration,
        length: Duration,
        max_rss_growth: f64,
    ) -> Self {
        let requests = tally.requests();
        let errors = tally.errors();
        let error_rate = if requests == 0 {
            1.0
        } else {
            errors as f64 / requests as f64
        };
        // VmRSS swings by up to a third from one sample to the next with no trend (the
        // allocator gives pages back and takes them again), so that two samples, or two means
        // of a few, differ by chance. Growth compares peaks: of the first half of the samples
        // from the warm-up on, and of the second half. Memory that keeps growing raises the
        // second peak; memory that swings within a bound does not.
        let after: Vec<(Duration, u64)> = samples
            .iter()
            .filter(|s| s.at >= warmup)
            .filter_map(|s| Some((s.at, s.rss_kib?)))
            .collect();
        let peak =
            |window: &[(Duration, u64)]| window.iter().map(|(_, k)| *k as f64).reduce(f64::max);
        let baseline_at = after.first().map(|(at, _)| *at);
        let first_kib = after.first().map(|(_, k)| *k);
        let max_kib = after.iter().map(|(_, k)| *k).max();
        let last_kib = after.last().map(|(_, k)| *k);
        let (baseline_peak, end_peak) = if after.len() >= 2 {
            let half = after.len() / 2;
            (peak(&after[..half]), peak(&after[half..]))
        } else {
            (None, None)
        };
        let growth = match (baseline_peak, end_peak) {
            (Some(base), Some(end)) if base > 0.0 => Some((end - base) / base),
            _ => None,
        };
        let mut failures = Vec::new();
        if requests == 0 {
            failures.push("no request completed".into());
        } else if error_rate >= MAX_ERROR_RATE {
            failures.push(format!(
                "error rate {:.3}% (limit {:.1}%)",
                error_rate * 100.0,
                MAX_ERROR_RATE * 100.0
            ));
        }
        match growth {
            Some(g) if g >= max_rss_growth => failures.push(format!(
                "RSS grew {:.1}% after warm-up (limit {:.0}%)",
                g * 100.0,
                max_rss_growth * 100.0
            )),
            Some(_) => {}
            None => failures.push(format!(
                "fewer than two VmRSS samples after the warm-up ({} of {})",
                humantime::format_duration(warmup),
                humantime::format_duration(length)
            )),
        }
        Self {
            requests,
            errors,
            error_rate,
            errors_by_key: tally.errors_by_key(),
            baseline_at,
            first_kib,
            max_kib,
            last_kib,
            baseline_peak,
            end_peak,
            growth,
            failures,
        }
    }

    pub(super) fn print(&self, start: Option<&TableSizes>, end: Option<&TableSizes>, json: bool) {
        let mut lines = vec![
            format!(
                "soak: {} requests, {} errors ({:.4}%){}",
                self.requests,
                self.errors,
                self.error_rate * 100.0,
                if self.errors_by_key.is_empty() {
                    String::new()
                } else {
                    format!(": {}", counts_text(&self.errors_by_key))
                }
            ),
            format!(
                "RSS (server + load generator) from {}s on: first {} MiB, max {} MiB, last {} MiB; peak of the first half of the samples {} MiB -> of the second half {} MiB: growth {}",
                self.baseline_at.map_or(0, |d| d.as_secs()),
                mib(self.first_kib),
                mib(self.max_kib),
                mib(self.last_kib),
                mib_f64(self.baseline_peak),
                mib_f64(self.end_peak),
                self.growth
                    .map_or_else(|| "n/a".into(), |g| format!("{:+.1}%", g * 100.0)),
            ),
            format!("rows at start: {}", rows_text(start)),
            format!("rows at end:   {}", rows_text(end)),
            if self.failures.is_empty() {
                "soak: PASS".into()
            } else {
                format!("soak: FAIL: {}", self.failures.join("; "))
            },
        ];
        for line in lines.drain(..) {
            say(json, line);
        }
    }
}
