//! Load benchmark: the worker against a hello-world Rust worker under the same workerd
//! (`wrangler dev`, release builds), in the same run, at a fixed concurrency.
//!
//! For each scenario it prints requests/s, p50 and p99 latency, and the throughput as a ratio
//! to the hello-world baseline (measured before and after ours; the ratio uses their mean, and
//! the drift between the two is printed so a noisy machine shows). Then resource reads spread
//! over 1, 10 and many accounts. Rate limits are raised so they never trip (they still run).
//!
//! Account creation, webhooks and resource reads are also compared with the floor
//! (`bench/floor`): a worker doing only what any implementation must (for a new account: verify
//! the signature, one directory object per email, one account object, one D1 record, one log
//! line; for an event: verify, look its id up in the account's object, record it with a state
//! change; for a read: verify the signature and the bearer's tag, one log line, one read of the
//! stored resource in the account's object, only for a stored token), measured before and after
//! ours.
//!
//! The two grants of `POST /oauth/token` (code exchange and refresh) are also compared with the
//! peer (`bench/peer-oauth`): Cloudflare's `@cloudflare/workers-oauth-provider` library with its
//! KV storage, measured before and after ours (`peer.rs`).
//!
//! usage: bench [--quick] [--concurrency N] [--seconds S] [--accounts N] [--on-disk]
//!              [--only TEXT] [--var NAME=VALUE]...
//!   --quick     1 s per scenario and 100 accounts at most: checks the benchmark runs
//!   --on-disk   keep the local state on disk (the test suite's folder) instead of tmpfs
//!   --only      only our scenarios whose name contains TEXT (e.g. "account creation"); the
//!               references (hello-world, floor, peer) always run, so the ratios still hold
//!   --var       one more var for our worker in this run (e.g. AUDIT_BATCH_MS=60000)
//!   defaults:   8 concurrent clients, 8 s per scenario (after 2 s of warm-up), 1000 accounts
//!
//! The worker's local state (the SQLite files of its Durable Objects and of D1) goes to a
//! fresh folder in `/dev/shm` when the machine has one: on disk, every new object's file and
//! every commit waits for the disk's sync, which measures the VM's disk rather than the
//! worker (production storage is not a local file). `--on-disk` measures that case.

mod harness;
mod peer;

use app_client::Provider;
use app_tests::flows::{self, Tokens};
use app_tests::{DevWorker, Options, WEBHOOK_SECRET};
use harness::{
    create_account, deliver_event, expect_ok, load, parallel, settings, FloorStats, Reference,
    Settings, Stats, TmpfsState,
};
use peer::Peer;
use serde_json::json;

/// `n` new accounts, each with a free plan, created `concurrency` at a time.
fn accounts_with_plans(
    p: &Provider,
    n: usize,
    concurrency: usize,
    tag: &str,
) -> Result<Vec<(Tokens, String)>, String> {
    parallel(n, concurrency, |i| {
        let id = format!("acctreq_bench_{tag}_{}_{i}", std::process::id());
        let t = flows::new_account(p, &id, &format!("{tag}{i}@bench.example"))?;
        let plan = flows::create_complete(
            p,
            &t.access,
            &json!({"service_id": "free", "project_id": "proj_bench"}),
        )?;
        Ok((t, plan))
    })
}

/// A reader: its client, the accounts it reads from (tokens and plan id), and its position.
type Reader = (Provider, Vec<(Tokens, String)>, usize);

struct Row {
    name: String,
    stats: Stats,
    target: Option<f64>,
}

/// The two floors every scenario is compared with (mean of before and after, req/s).
struct Floors {
    bare: f64,
    logged: f64,
}

fn print_row(row: &Row, floors: &Floors) {
    let s = &row.stats;
    let ratio = s.rps() / floors.bare;
    let verdict = match row.target {
        Some(t) if ratio >= t => format!("target >= {t:.1}: met"),
        Some(t) => format!("target >= {t:.1}: NOT MET"),
        None => String::new(),
    };
    println!(
        "{:<42} {:>6.0} {:>8.2} {:>8.2} {:>6.2}x {:>7.2}x {:>6}  {verdict}",
        row.name,
        s.rps(),
        s.percentile(0.50),
        s.percentile(0.99),
        ratio,
        s.rps() / floors.logged,
        s.failed
    );
    if let Some(e) = &s.first_error {
        println!(
            "    first error: {}",
            e.chars().take(300).collect::<String>()
        );
    }
}

fn main() {
    let settings = match settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::exit(2);
        }
    };
    match run(&settings) {
        Ok(0) => {}
        Ok(failed) => {
            eprintln!("bench: {failed} requests failed (see the first errors above)");
            std::process::exit(1);
        }
        Err(e) => {
            eprintln!("bench: {e}");
            std::process::exit(1);
        }
    }
}

/// Runs every scenario; returns how many requests failed.
fn run(settings: &Settings) -> Result<u64, String> {
    let c = settings.concurrency;
    println!(
        "load benchmark: {c} concurrent clients, {} s per scenario after {} s warm-up{}",
        settings.seconds,
        settings.warmup,
        if settings.quick { " (quick mode)" } else { "" }
    );
    let baseline = Reference::hello()?;
    let before = baseline.measure(settings, "/");
    let before_logged = baseline.measure(settings, "/log");
    drop(baseline);

    let shm = std::path::Path::new("/dev/shm");
    let tmpfs = TmpfsState(
        (!settings.on_disk && shm.is_dir())
            .then(|| shm.join(format!("app-bench-{}", std::process::id()))),
    );
    println!(
        "local state (Durable Objects, D1): {}",
        match &tmpfs.0 {
            Some(dir) => format!("tmpfs, {}", dir.display()),
            None => "on disk, the test suite's run folder".into(),
        }
    );
    let floor = Reference::floor(&tmpfs)?;
    let floor_before = floor.measure_floor(settings, "before")?;
    drop(floor);
    let peer = Peer::start(&tmpfs)?;
    let peer_before = peer.measure(settings, "before")?;
    drop(peer);

    // Production's configuration where the tests' differs: no rate limit in the way (the
    // orchestrator's is the binding's, in the run's wrangler.toml), and no development fault
    // switch (with it on, every audit write first asks the switch's object).
    let mut options = Options::default().rate_limit("ORCHESTRATOR_LIMITER", 1_000_000_000);
    for (k, v) in [
        ("ACCOUNT_RATE_LIMIT", "1000000000"),
        ("FAULT_INJECTION", "disabled"),
    ] {
        options.vars.push((k.into(), v.into()));
    }
    options.vars.extend(settings.vars.iter().cloned());
    options.persist_to = tmpfs.0.clone();
    let worker = DevWorker::start(options);
    let p = worker.provider();
    let mut rows = Vec::new();

    const DISCOVERY: &str = "discovery GET /provisioning/services";
    const REFRESH: &str = "token refresh POST /oauth/token";
    const EXCHANGE: &str = "code exchange POST /oauth/token";
    const READ: &str = "resource GET /provisioning/resources/{id}";
    const WEBHOOK: &str = "webhook POST /webhooks/stripe";
    const CREATION: &str = "account creation POST account_requests";
    const SPREAD: &str = "resource GET over";
    let wanted = |name: &str| settings.wanted(name);
    if wanted(DISCOVERY) {
        rows.push(Row {
            name: DISCOVERY.into(),
            target: Some(0.8),
            stats: load(settings, vec![p.clone(); c], |p, _| expect_ok(p.services())),
        });
    }

    // The code exchange's pool is sized by the refresh rate: measured for either.
    if wanted(REFRESH) || wanted(EXCHANGE) {
        let own = accounts_with_plans(&p, c, c, "own")?;
        let refreshing: Vec<(Provider, Tokens)> =
            own.iter().map(|(t, _)| (p.clone(), t.clone())).collect();
        let refresh = load(settings, refreshing, |(p, t), _| {
            let reply = p.refresh(&t.refresh, true).map_err(|e| e.to_string())?;
            *t = flows::tokens(&reply)?;
            Ok(())
        });
        let refresh_rps = refresh.rps();
        rows.push(Row {
            name: REFRESH.into(),
            target: None,
            stats: refresh,
        });
        if wanted(EXCHANGE) {
            rows.push(Row {
                name: EXCHANGE.into(),
                target: None,
                stats: peer::ours_exchange(&p, settings, refresh_rps)?,
            });
        }
    }

    let reads = wanted(READ) || wanted(WEBHOOK) || wanted(SPREAD);
    let many = if reads {
        accounts_with_plans(&p, settings.accounts, c, "many")?
    } else {
        Vec::new()
    };
    // Fresh access tokens: the refresh scenario rotated the first accounts' pairs.
    let readers = |set: &[(Tokens, String)]| -> Vec<Reader> {
        (0..c).map(|i| (p.clone(), set.to_vec(), i)).collect()
    };
    let read = |(p, set, i): &mut Reader, _| {
        let (t, plan) = &set[*i % set.len()];
        *i += 1;
        expect_ok(p.get_resource(&t.access, plan))
    };
    if wanted(READ) {
        rows.push(Row {
            name: READ.into(),
            target: Some(0.5),
            stats: load(settings, readers(&many[..c.min(many.len())]), read),
        });
    }

    let webhook_accounts: Vec<String> = many
        .iter()
        .take(10)
        .map(|(t, _)| t.account.clone())
        .collect();
    if wanted(WEBHOOK) {
        rows.push(Row {
            name: WEBHOOK.into(),
            target: Some(0.5),
            stats: load(settings, vec![p.clone(); c], |p, n| {
                let account = &webhook_accounts[n as usize % webhook_accounts.len()];
                deliver_event(p, "/webhooks/stripe", WEBHOOK_SECRET, account, n)
            }),
        });
    }

    if wanted(CREATION) {
        rows.push(Row {
            name: CREATION.into(),
            target: Some(0.3),
            stats: load(settings, vec![p.clone(); c], |p, n| {
                create_account(p, "new", n)
            }),
        });
    }

    // Two passes, the second in reverse order, each half as long: the machine's drift over the
    // run then weighs the same on every spread, so "1,000 vs 1" compares like with like.
    let half = Settings {
        seconds: settings.seconds / 2.0,
        ..settings.clone()
    };
    let spreads: &[usize] = if wanted(SPREAD) {
        &[1, 10, settings.accounts]
    } else {
        &[]
    };
    let spread = |n: usize| load(&half, readers(&many[..n.min(many.len())]), read);
    let mut passes: Vec<Stats> = spreads.iter().map(|&n| spread(n)).collect();
    for (i, &n) in spreads.iter().enumerate().rev() {
        passes[i].absorb(spread(n));
    }
    let scale: Vec<Row> = spreads
        .iter()
        .zip(passes)
        .map(|(n, stats)| Row {
            name: format!("{SPREAD} {n} accounts"),
            target: None,
            stats,
        })
        .collect();
    drop(worker);

    let floor = Reference::floor(&tmpfs)?;
    let floor_after = floor.measure_floor(settings, "after")?;
    drop(floor);
    let peer = Peer::start(&tmpfs)?;
    let peer_after = peer.measure(settings, "after")?;
    drop(peer);
    drop(tmpfs);

    let baseline = Reference::hello()?;
    let after = baseline.measure(settings, "/");
    let after_logged = baseline.measure(settings, "/log");
    drop(baseline);

    let floors = Floors {
        bare: (before.rps() + after.rps()) / 2.0,
        logged: (before_logged.rps() + after_logged.rps()) / 2.0,
    };
    println!();
    println!(
        "{:<42} {:>6} {:>8} {:>8} {:>7} {:>8} {:>6}",
        "scenario", "req/s", "p50 ms", "p99 ms", "ratio", "vs log", "failed"
    );
    let drift = after.rps() / before.rps();
    let mean =
        |f: fn(&FloorStats) -> &Stats| (f(&floor_before).rps() + f(&floor_after).rps()) / 2.0;
    let floor_rps = mean(|f| &f.accounts);
    let floor_events_rps = mean(|f| &f.webhooks);
    let floor_reads_rps = mean(|f| &f.reads);
    let reference_failed = [
        &floor_before.accounts,
        &floor_after.accounts,
        &floor_before.webhooks,
        &floor_after.webhooks,
        &floor_before.reads,
        &floor_after.reads,
        &peer_before.exchange,
        &peer_after.exchange,
        &peer_before.refresh,
        &peer_after.refresh,
    ]
    .iter()
    .map(|s| s.failed)
    .sum::<u64>();
    let peer_lines: Vec<String> = [
        ("token refresh", &peer_before.refresh, &peer_after.refresh),
        ("code exchange", &peer_before.exchange, &peer_after.exchange),
    ]
    .into_iter()
    .filter_map(|(grant, before, after)| {
        let ours = rows.iter().find(|r| r.name.starts_with(grant))?;
        Some(peer::compare(grant, &ours.stats, before, after))
    })
    .collect();
    for (name, s) in [
        ("hello-world baseline (before)", before),
        ("hello-world baseline (after)", after),
        ("hello-world + 1 log line (before)", before_logged),
        ("hello-world + 1 log line (after)", after_logged),
        ("floor: account creation (before)", floor_before.accounts),
        ("floor: account creation (after)", floor_after.accounts),
        ("floor: webhook (before)", floor_before.webhooks),
        ("floor: webhook (after)", floor_after.webhooks),
        ("floor: resource read (before)", floor_before.reads),
        ("floor: resource read (after)", floor_after.reads),
        ("peer: token refresh (before)", peer_before.refresh),
        ("peer: token refresh (after)", peer_after.refresh),
        ("peer: code exchange (before)", peer_before.exchange),
        ("peer: code exchange (after)", peer_after.exchange),
    ] {
        print_row(
            &Row {
                name: name.into(),
                stats: s,
                target: None,
            },
            &floors,
        );
    }
    for row in &rows {
        print_row(row, &floors);
    }
    println!();
    for row in &scale {
        print_row(row, &floors);
    }
    if let (Some(one), Some(all)) = (scale.first(), scale.last()) {
        println!(
            "per-request cost over {} accounts vs 1 account: {:.2}x the throughput",
            settings.accounts,
            all.stats.rps() / one.stats.rps()
        );
    }
    for (scenario, floor) in [
        ("account creation", floor_rps),
        ("webhook", floor_events_rps),
    ] {
        if let Some(ours) = rows.iter().find(|r| r.name.starts_with(scenario)) {
            println!(
                "{scenario} vs the floor (bench/floor, mean of before and after): {:.2}x the \
                 throughput; the floor itself: {:.2}x the bare hello-world worker",
                ours.stats.rps() / floor,
                floor / floors.bare
            );
        }
    }
    if let Some(ours) = rows.iter().find(|r| r.name.starts_with("resource GET")) {
        let ratio = ours.stats.rps() / floor_reads_rps;
        println!(
            "resource GET vs the floor (one signed read of one Durable Object): {ratio:.2}x the \
             throughput (target >= 0.9: {}); the floor itself: {:.2}x the bare hello-world \
             worker (bench/floor, mean of before and after)",
            if ratio >= 0.9 { "met" } else { "NOT MET" },
            floor_reads_rps / floors.bare
        );
    }
    for line in &peer_lines {
        println!("{line}");
    }
    println!("baseline drift over the run: {drift:.2}x (after / before); ratios use their mean");
    println!(
        "ratio: against the bare hello-world worker (the targets); vs log: against the same \
         worker writing one log line per request, as ours does"
    );
    Ok(rows
        .iter()
        .chain(&scale)
        .map(|r| r.stats.failed)
        .sum::<u64>()
        + reference_failed)
}
