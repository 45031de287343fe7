//! `--soak DURATION`: a mixed load that should produce no error by design, run for a long
//! time, sampling throughput, VmRSS and table sizes every `--sample-every`. It fails (non-zero
//! exit) when the error rate reaches 0.1%, or when VmRSS grows 10% after `--soak-warmup`: the
//! peak of the second half of the samples from the warm-up on against the peak of the first.
//!
//! Unlike `mixed`, the soak never oversubscribes the server's hashing pool: logins go through
//! a gate of [`LOGIN_SLOTS`]. Every slot holds a user session that it refreshes, and logs out
//! and back in every minute or so; anonymous tokens are issued, introspected while fresh, and
//! some revoked; integration logins start sessions that expire. With the in-process server's
//! short lifetimes ([`policy`]) and clean-up interval, every table the clean-up keeps bounded
//! sees rows come and go within the run.
mod load;
mod verdict;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, anyhow, bail};
use serde_json::json;
use tessera::domain::policy::TokenPolicy;
use tessera_testkit::{create_users, describe};

use crate::{
    Setup,
    args::mix_json,
    engine::{Slot, drive, open_sessions},
    fixture::Credentials,
    report::say,
    requests::Caller,
    rss::{mib, rss_kib},
};
use load::{SOAK_MIX, Shared, SoakOp, SoakSlot, mix_description};
use verdict::{Sample, Summary, rows_json, rows_text, table_sizes};

/// Logins in flight at most: below the server's hashing permits (one per core), so that no
/// login is ever turned away for capacity.
pub const LOGIN_SLOTS: usize = 1;
/// Clean-up interval of the in-process server during a soak.
pub const CLEANUP_INTERVAL: Duration = Duration::from_secs(10);

/// Short lifetimes for the in-process server, so that rows expire and are cleaned up within
/// minutes: expired refresh tokens after about 1m15s, sessions (integration ones run to their
/// maximum) after about 2m25s. Slots log out and in within the session maximum.
pub fn policy() -> TokenPolicy {
    TokenPolicy {
        access_token_ttl: Duration::from_secs(30),
        trusted_token_ttl: Duration::from_secs(30),
        refresh_token_ttl: Duration::from_secs(60),
        session_max_ttl: Duration::from_secs(90),
        ..TokenPolicy::default()
    }
}

/// The default warm-up: 2m (the in-process server's tables are then nearly steady), or half
/// the soak if that is shorter.
fn default_warmup(length: Duration) -> Duration {
    (length / 2).min(Duration::from_secs(120))
}

/// Runs the soak against the server the setup's clients are registered on.
pub async fn run(setup: &mut Setup<'_>, length: Duration) -> anyhow::Result<()> {
    let (args, store, channels) = (setup.args, setup.store, &setup.channels);
    let fixture = &mut setup.fixture;
    let usernames = create_users(
        store,
        &setup.hasher,
        &format!("bench-{}-soak", fixture.run_id),
        setup.user_count,
        &fixture.password,
    )
    .await?;
    let warmup = args.soak_warmup.unwrap_or_else(|| default_warmup(length));
    if length <= warmup {
        bail!(
            "--soak ({}) must be longer than --soak-warmup ({})",
            humantime::format_duration(length),
            humantime::format_duration(warmup)
        );
    }
    if args.sample_every.is_zero() {
        bail!("--sample-every must be more than 0s");
    }
    fixture.renew(&channels[0]).await?;
    // The hot token's lifetime says how long the server's tokens live.
    let token_ttl = {
        let probe = Caller::new(channels[0].clone())
            .issue(&fixture.clients.market_id, "")
            .await
            .map_err(|s| anyhow!("cannot issue an anonymous token: {}", describe(&s)))?;
        Duration::from_secs(probe.expires_in.max(2).unsigned_abs())
    };
    let shared = Arc::new(Shared::new(
        fixture.clients.clone(),
        fixture.password.clone(),
        Credentials {
            bearer: fixture.credentials.bearer.clone(),
            hot_token: fixture.credentials.hot_token.clone(),
        },
        token_ttl / 2,
        LOGIN_SLOTS,
    ));

    let slots = Slot::many(channels, args.concurrency, &usernames, 0x50A4_0000);
    let (slots, took) = open_sessions(
        slots,
        LOGIN_SLOTS,
        &fixture.clients.market_id,
        &fixture.password,
    )
    .await?;
    eprintln!(
        "soak: {} sessions logged in in {:.2}s; tokens live {}; samples every {}, RSS baseline at the first sample from {}",
        slots.len(),
        took.as_secs_f64(),
        humantime::format_duration(token_ttl),
        humantime::format_duration(args.sample_every),
        humantime::format_duration(warmup),
    );

    let rows_at_start = table_sizes(store).await;
    say(
        args.json,
        format!(
            "soak: {} for {}; mix: {}",
            if args.target.is_some() {
                "target server"
            } else {
                "in-process server"
            },
            humantime::format_duration(length),
            mix_description()
        ),
    );
    say(
        args.json,
        format!("rows at start: {}", rows_text(rows_at_start.as_ref())),
    );

    let start = Instant::now();
    let end = start + length;
    let drivers = slots
        .into_iter()
        .map(|slot| SoakSlot::new(slot, shared.clone()))
        .collect();
    let load = tokio::spawn(drive(drivers, start, end));

    // Renews the bearer and the hot token at a third of their lifetime.
    let renewer = {
        let shared = shared.clone();
        let channel = channels[0].clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(token_ttl / 3).await;
                match shared.clients.credentials(&channel).await {
                    Ok(renewed) => {
                        shared.renew(renewed);
                        shared.tally.record(Some("renew-credentials"), Ok(()));
                    }
                    Err(e) => {
                        eprintln!("tessera-bench: soak: cannot renew credentials: {e:#}");
                        shared
                            .tally
                            .record(Some("renew-credentials"), Err("failed".into()));
                    }
                }
            }
        })
    };

    let mut samples: Vec<Sample> = Vec::new();
    let mut last_requests = 0;
    let mut last_at = Duration::ZERO;
    let mut next = start + args.sample_every;
    loop {
        tokio::time::sleep_until(next.min(end).into()).await;
        let at = start.elapsed();
        let requests = shared.tally.requests();
        let errors = shared.tally.errors();
        let rows = table_sizes(store).await;
        let span = (at - last_at).as_secs_f64().max(1e-9);
        let sample = Sample {
            at,
            req_per_s: (requests - last_requests) as f64 / span,
            requests,
            errors,
            rss_kib: rss_kib(),
            rows,
        };
        say(
            args.json,
            format!(
                "[{:>5.0}s] {:>7.0} req/s, errors {} of {}, RSS {} MiB, {}",
                sample.at.as_secs_f64(),
                sample.req_per_s,
                sample.errors,
                sample.requests,
                mib(sample.rss_kib),
                rows_text(sample.rows.as_ref())
            ),
        );
        last_requests = requests;
        last_at = at;
        samples.push(sample);
        if Instant::now() >= end {
            break;
        }
        next += args.sample_every;
    }
    load.await.context("a soak task failed")??;
    renewer.abort();

    let rows_at_end = table_sizes(store).await;
    let max_rss_growth = args.soak_max_rss_growth / 100.0;
    let summary = Summary::of(&samples, &shared.tally, warmup, length, max_rss_growth);
    summary.print(rows_at_start.as_ref(), rows_at_end.as_ref(), args.json);
    if args.json {
        let json = json!({
            "soak_s": length.as_secs_f64(),
            "concurrency": args.concurrency,
            "connections": args.connections,
            "mix_percent": mix_json(&SOAK_MIX, SoakOp::name),
            "requests": summary.requests,
            "errors": summary.errors,
            "error_rate": summary.error_rate,
            "errors_by_key": shared.tally.errors_by_key(),
            "rss_kib_first_after_warmup": summary.first_kib,
            "rss_kib_max_after_warmup": summary.max_kib,
            "rss_kib_last": summary.last_kib,
            "rss_kib_peak_first_half": summary.baseline_peak,
            "rss_kib_peak_second_half": summary.end_peak,
            "rss_growth": summary.growth,
            "rows_at_start": rows_json(rows_at_start.as_ref()),
            "rows_at_end": rows_json(rows_at_end.as_ref()),
            "samples": samples.iter().map(|s| json!({
                "at_s": s.at.as_secs_f64(),
                "req_per_s": s.req_per_s,
                "requests": s.requests,
                "errors": s.errors,
                "rss_kib": s.rss_kib,
                "rows": rows_json(s.rows.as_ref()),
            })).collect::<Vec<_>>(),
            "passed": summary.failures.is_empty(),
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
    }
    if summary.failures.is_empty() {
        Ok(())
    } else {
        bail!("soak failed: {}", summary.failures.join("; "))
    }
}
