//! Load benchmark: the worker against a hello-world Rust worker under the same workerd
//! (`wrangler dev`, release builds), in the same run, at a fixed concurrency.
//!
//! For each scenario it prints requests/s, p50 and p99 latency, and the throughput as a ratio
//! to the hello-world baseline (measured before and after ours; the ratio uses their mean, and
//! the drift between the two is printed so a noisy machine shows). Then resource reads spread
//! over 1, 10 and many accounts. Rate limits are raised so they never trip (they still run).
//!
//! Account creation and webhooks are also compared with the floor (`bench/floor`): a worker
//! doing only what any implementation must (for a new account: verify the signature, one
//! directory object per email, one account object, one D1 record, one log line; for an event:
//! verify, look its id up in the account's object, record it with a state change), measured
//! before and after ours.
//!
//! usage: bench [--quick] [--concurrency N] [--seconds S] [--accounts N] [--on-disk]
//!   --quick     1 s per scenario and 100 accounts at most: checks the benchmark runs
//!   --on-disk   keep the local state on disk (the test suite's folder) instead of tmpfs
//!   defaults:   8 concurrent clients, 8 s per scenario (after 2 s of warm-up), 1000 accounts
//!
//! The worker's local state (the SQLite files of its Durable Objects and of D1) goes to a
//! fresh folder in `/dev/shm` when the machine has one: on disk, every new object's file and
//! every commit waits for the disk's sync, which measures the VM's disk rather than the
//! worker (production storage is not a local file). `--on-disk` measures that case.

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use app_client::{unix_now, Call, Provider, Signing};
use app_tests::flows::{self, Tokens};
use app_tests::{free_port, DevWorker, Options, WEBHOOK_SECRET};
use serde_json::json;

#[derive(Clone)]
struct Settings {
    quick: bool,
    concurrency: usize,
    seconds: f64,
    warmup: f64,
    accounts: usize,
    on_disk: bool,
}

fn settings() -> Result<Settings, String> {
    let mut s = Settings {
        quick: false,
        concurrency: 8,
        seconds: 8.0,
        warmup: 2.0,
        accounts: 1000,
        on_disk: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .and_then(|v| v.parse::<f64>().ok())
                .filter(|v| *v > 0.0)
                .ok_or_else(|| format!("{name} needs a positive number"))
        };
        match arg.as_str() {
            "--quick" => {
                s.quick = true;
                s.seconds = 1.0;
                s.warmup = 0.5;
                s.accounts = s.accounts.min(100);
            }
            "--concurrency" => s.concurrency = value("--concurrency")? as usize,
            "--seconds" => s.seconds = value("--seconds")?,
            "--accounts" => s.accounts = value("--accounts")? as usize,
            "--on-disk" => s.on_disk = true,
            other => return Err(format!("unknown argument {other}; see the module docs")),
        }
    }
    Ok(s)
}

/// What one scenario measured.
struct Stats {
    ok: u64,
    failed: u64,
    elapsed: Duration,
    /// Latencies of the measured successful requests, in microseconds, sorted.
    micros: Vec<u64>,
    first_error: Option<String>,
}

impl Stats {
    /// Adds another measurement of the same scenario.
    fn absorb(&mut self, other: Stats) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.elapsed += other.elapsed;
        self.micros.extend(other.micros);
        self.micros.sort_unstable();
        self.first_error = self.first_error.take().or(other.first_error);
    }
    fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
    fn percentile(&self, p: f64) -> f64 {
        if self.micros.is_empty() {
            return f64::NAN;
        }
        let i = ((self.micros.len() as f64 - 1.0) * p).round() as usize;
        self.micros[i] as f64 / 1000.0
    }
}

/// Runs `op` from `states.len()` threads for the warm-up, then for the measured period.
fn load<S: Send>(
    settings: &Settings,
    states: Vec<S>,
    op: impl Fn(&mut S, u64) -> Result<(), String> + Sync,
) -> Stats {
    let barrier = Barrier::new(states.len());
    let counter = AtomicU64::new(0);
    let warmup = Duration::from_secs_f64(settings.warmup);
    let measured = Duration::from_secs_f64(settings.seconds);
    let results: Vec<(u64, Vec<u64>, Option<String>, Duration)> = std::thread::scope(|scope| {
        let handles: Vec<_> = states
            .into_iter()
            .map(|mut state| {
                let (barrier, counter, op) = (&barrier, &counter, &op);
                scope.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    let (measure_from, end) = (start + warmup, start + warmup + measured);
                    let mut micros = Vec::new();
                    let (mut failed, mut first_error) = (0, None);
                    loop {
                        let before = Instant::now();
                        if before >= end {
                            break;
                        }
                        let outcome = op(&mut state, counter.fetch_add(1, Ordering::Relaxed));
                        if before < measure_from {
                            continue;
                        }
                        match outcome {
                            Ok(()) => micros.push(before.elapsed().as_micros() as u64),
                            Err(e) => {
                                failed += 1;
                                first_error.get_or_insert(e);
                            }
                        }
                    }
                    // The last request may end after `end`: count the real measured time.
                    let elapsed = Instant::now().saturating_duration_since(measure_from);
                    (failed, micros, first_error, elapsed)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("load thread"))
            .collect()
    });
    let elapsed = results
        .iter()
        .map(|r| r.3)
        .max()
        .unwrap_or(measured)
        .max(Duration::from_millis(1));
    let mut micros: Vec<u64> = results.iter().flat_map(|r| r.1.iter().copied()).collect();
    micros.sort_unstable();
    Stats {
        ok: micros.len() as u64,
        failed: results.iter().map(|r| r.0).sum(),
        elapsed,
        micros,
        first_error: results.into_iter().find_map(|r| r.2),
    }
}

/// Expects a 2xx answer.
fn expect_ok(reply: Result<app_client::Reply, app_client::TransportError>) -> Result<(), String> {
    match reply {
        Ok(r) if r.is_success() => Ok(()),
        Ok(r) => Err(format!("{}: {}", r.status, r.text())),
        Err(e) => Err(e.to_string()),
    }
}

/// The signing key of the floor worker (`bench/floor/src/lib.rs`, `KEY`).
const FLOOR_KEY: &str = "floor-signing-key";

/// A reference worker of `bench/` (the hello-world baseline or the floor) under its own
/// `wrangler dev`, stopped on drop.
struct Reference {
    child: Child,
    url: String,
}

impl Reference {
    /// Builds `bench/<name>` as the real worker is built, starts it with its local state in
    /// `state` (emptied first) and waits until `probe` answers 200 with `ready`.
    fn start(
        name: &str,
        state: &std::path::Path,
        probe: Call,
        ready: &str,
    ) -> Result<Reference, String> {
        let crate_dir = format!("bench/{name}");
        let dir = app_tests::root().join(&crate_dir);
        let status = Command::new("sh")
            .arg(app_tests::root().join("scripts/build.sh"))
            .arg(&crate_dir)
            .current_dir(app_tests::root())
            .stdout(Stdio::null())
            .status()
            .map_err(|e| format!("scripts/build.sh {crate_dir}: {e}"))?;
        if !status.success() {
            return Err(format!("scripts/build.sh {crate_dir} failed"));
        }
        let _ = std::fs::remove_dir_all(state);
        let port = free_port();
        let log_path = dir.join("build/wrangler.log");
        let log = std::fs::File::create(&log_path).map_err(|e| format!("log file: {e}"))?;
        let log_err = log.try_clone().map_err(|e| e.to_string())?;
        use std::os::unix::process::CommandExt;
        let child = Command::new(app_tests::tool("wrangler"))
            .args(["dev", "--ip", "127.0.0.1", "--port", &port.to_string()])
            .args(["--inspector-port", &free_port().to_string()])
            .args(["--show-interactive-dev-session=false"])
            .arg("--persist-to")
            .arg(state)
            .current_dir(&dir)
            .env("PATH", app_tests::tool_path())
            .env("APP_SKIP_BUILD", "1")
            .env("CI", "true")
            .env("WRANGLER_SEND_METRICS", "false")
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log_err)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("start wrangler dev: {e}"))?;
        let reference = Reference {
            child,
            url: format!("http://127.0.0.1:{port}"),
        };
        let client = Provider::new(&reference.url, "");
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            if let Ok(r) = client.send(probe.clone()) {
                if r.status == 200 && r.text() == ready {
                    return Ok(reference);
                }
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        Err(format!(
            "bench/{name} did not answer within 90 s (log: {})",
            log_path.display()
        ))
    }

    /// The hello-world worker, its state in its build folder (it keeps none).
    fn hello() -> Result<Reference, String> {
        let state = app_tests::root().join("bench/hello/build/state");
        let probe = Call::get("/").signing(Signing::Unsigned);
        Reference::start("hello", &state, probe, "hello")
    }

    /// Measures `GET path` on the hello-world worker: `/` answers only, `/log` also writes one
    /// log line.
    fn measure(&self, settings: &Settings, path: &str) -> Stats {
        let clients = (0..settings.concurrency)
            .map(|_| Provider::new(&self.url, ""))
            .collect();
        load(settings, clients, |p: &mut Provider, _| {
            let r = p
                .send(Call::get(path).signing(Signing::Unsigned))
                .map_err(|e| e.to_string())?;
            if r.status == 200 {
                Ok(())
            } else {
                Err(format!("{}", r.status))
            }
        })
    }

    /// The floor worker, its state next to ours (tmpfs unless `--on-disk`).
    fn floor(tmpfs: &TmpfsState) -> Result<Reference, String> {
        let state = match &tmpfs.0 {
            Some(dir) => dir.join("floor"),
            None => app_tests::root().join("bench/floor/build/state"),
        };
        let probe = Call::new("POST", "/setup").signing(Signing::Unsigned);
        Reference::start("floor", &state, probe, "ready")
    }

    /// Measures account creation on the floor worker, with the same signed request as ours,
    /// then webhooks to 10 of its accounts, with the same events as ours.
    fn measure_floor(&self, settings: &Settings, tag: &str) -> Result<(Stats, Stats), String> {
        let tag = format!("floor{tag}");
        let clients = (0..settings.concurrency)
            .map(|_| Provider::new(&self.url, FLOOR_KEY))
            .collect();
        let accounts = load(settings, clients, |p: &mut Provider, n| {
            create_account(p, &tag, n)
        });
        let p = Provider::new(&self.url, FLOOR_KEY);
        let mut ids = Vec::new();
        for k in 0..10 {
            let email = format!("{tag}{}w{k}@bench.example", std::process::id());
            let id = format!("acctreq_bench_{tag}_w{k}");
            let reply = p
                .account_request(&flows::account_request(&id, &email))
                .map_err(|e| e.to_string())?;
            match reply.json()["account_id"].as_str() {
                Some(account) => ids.push(account.to_string()),
                None => return Err(format!("floor account: {}", reply.text())),
            }
        }
        let webhooks = load(settings, vec![p; settings.concurrency], |p, n| {
            let account = &ids[n as usize % ids.len()];
            deliver_event(p, "/webhook", FLOOR_KEY, account, n)
        });
        Ok((accounts, webhooks))
    }
}

impl Drop for Reference {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-TERM", "--", &group]).status();
        std::thread::sleep(Duration::from_millis(300));
        let _ = Command::new("kill").args(["-KILL", "--", &group]).status();
        let _ = self.child.wait();
    }
}

/// One signed Stripe event (`invoice.upcoming`, unique per process and `n`) for `account`.
fn deliver_event(
    p: &Provider,
    path: &str,
    secret: &str,
    account: &str,
    n: u64,
) -> Result<(), String> {
    let pid = std::process::id();
    let body = json!({"id": format!("evt_bench_{pid}_{n}"), "object": "event",
        "api_version": "2026-04-22.preview", "created": unix_now(), "livemode": false,
        "type": "invoice.upcoming",
        "data": {"object": {"id": format!("in_bench_{n}"), "object": "invoice",
            "metadata": {"account_id": account}}}})
    .to_string();
    let signature = domain::signature::sign_header(secret.as_bytes(), unix_now(), body.as_bytes());
    expect_ok(
        p.send(
            Call::new("POST", path)
                .raw_body(body.into_bytes(), "application/json")
                .signing(Signing::Raw(signature))
                .api_version(None),
        ),
    )
}

/// One account request for a new email (unique per process, `tag` and `n`).
fn create_account(p: &Provider, tag: &str, n: u64) -> Result<(), String> {
    let pid = std::process::id();
    let id = format!("acctreq_bench_{tag}_{pid}_{n}");
    let email = format!("{tag}{pid}x{n}@bench.example");
    expect_ok(p.account_request(&flows::account_request(&id, &email)))
}

/// `n` new accounts, each with a free plan, created `concurrency` at a time.
fn accounts_with_plans(
    p: &Provider,
    n: usize,
    concurrency: usize,
    tag: &str,
) -> Result<Vec<(Tokens, String)>, String> {
    let next = AtomicU64::new(0);
    let made: Vec<Result<Vec<(Tokens, String)>, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..concurrency.min(n).max(1))
            .map(|_| {
                let (next, p) = (&next, p.clone());
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                        if i >= n {
                            return Ok(mine);
                        }
                        let id = format!("acctreq_bench_{tag}_{}_{i}", std::process::id());
                        let t = flows::new_account(&p, &id, &format!("{tag}{i}@bench.example"))?;
                        let plan = flows::create_complete(
                            &p,
                            &t.access,
                            &json!({"service_id": "free", "project_id": "proj_bench"}),
                        )?;
                        mine.push((t, plan));
                    }
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("setup thread"))
            .collect()
    });
    let mut all = Vec::with_capacity(n);
    for part in made {
        all.extend(part?);
    }
    Ok(all)
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

/// The worker's state folder on tmpfs, removed when dropped (also when the run fails early).
struct TmpfsState(Option<std::path::PathBuf>);

impl Drop for TmpfsState {
    fn drop(&mut self) {
        if let Some(dir) = &self.0 {
            let _ = std::fs::remove_dir_all(dir);
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
    let (floor_before, floor_events_before) = floor.measure_floor(settings, "before")?;
    drop(floor);

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
    options.persist_to = tmpfs.0.clone();
    let worker = DevWorker::start(options);
    let p = worker.provider();
    let mut rows = Vec::new();

    rows.push(Row {
        name: "discovery GET /provisioning/services".into(),
        target: Some(0.8),
        stats: load(settings, vec![p.clone(); c], |p, _| expect_ok(p.services())),
    });

    let own = accounts_with_plans(&p, c, c, "own")?;
    let refreshing: Vec<(Provider, Tokens)> =
        own.iter().map(|(t, _)| (p.clone(), t.clone())).collect();
    rows.push(Row {
        name: "token refresh POST /oauth/token".into(),
        target: None,
        stats: load(settings, refreshing, |(p, t), _| {
            let reply = p.refresh(&t.refresh, true).map_err(|e| e.to_string())?;
            *t = flows::tokens(&reply)?;
            Ok(())
        }),
    });

    let many = accounts_with_plans(&p, settings.accounts, c, "many")?;
    // Fresh access tokens: the refresh scenario rotated the first accounts' pairs.
    let readers = |set: &[(Tokens, String)]| -> Vec<Reader> {
        (0..c).map(|i| (p.clone(), set.to_vec(), i)).collect()
    };
    let read = |(p, set, i): &mut Reader, _| {
        let (t, plan) = &set[*i % set.len()];
        *i += 1;
        expect_ok(p.get_resource(&t.access, plan))
    };
    rows.push(Row {
        name: "resource GET /provisioning/resources/{id}".into(),
        target: Some(0.5),
        stats: load(settings, readers(&many[..c.min(many.len())]), read),
    });

    let webhook_accounts: Vec<String> = many
        .iter()
        .take(10)
        .map(|(t, _)| t.account.clone())
        .collect();
    rows.push(Row {
        name: "webhook POST /webhooks/stripe".into(),
        target: Some(0.5),
        stats: load(settings, vec![p.clone(); c], |p, n| {
            let account = &webhook_accounts[n as usize % webhook_accounts.len()];
            deliver_event(p, "/webhooks/stripe", WEBHOOK_SECRET, account, n)
        }),
    });

    rows.push(Row {
        name: "account creation POST account_requests".into(),
        target: Some(0.3),
        stats: load(settings, vec![p.clone(); c], |p, n| {
            create_account(p, "new", n)
        }),
    });

    // Two passes, the second in reverse order, each half as long: the machine's drift over the
    // run then weighs the same on every spread, so "1,000 vs 1" compares like with like.
    let half = Settings {
        seconds: settings.seconds / 2.0,
        ..settings.clone()
    };
    let spreads = [1, 10, settings.accounts];
    let spread = |n: usize| load(&half, readers(&many[..n.min(many.len())]), read);
    let mut passes: Vec<Stats> = spreads.iter().map(|&n| spread(n)).collect();
    for (i, &n) in spreads.iter().enumerate().rev() {
        passes[i].absorb(spread(n));
    }
    let scale: Vec<Row> = spreads
        .iter()
        .zip(passes)
        .map(|(n, stats)| Row {
            name: format!("resource GET over {n} accounts"),
            target: None,
            stats,
        })
        .collect();
    drop(worker);

    let floor = Reference::floor(&tmpfs)?;
    let (floor_after, floor_events_after) = floor.measure_floor(settings, "after")?;
    drop(floor);
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
    let floor_rps = (floor_before.rps() + floor_after.rps()) / 2.0;
    let floor_events_rps = (floor_events_before.rps() + floor_events_after.rps()) / 2.0;
    let floor_failed = [
        &floor_before,
        &floor_after,
        &floor_events_before,
        &floor_events_after,
    ]
    .iter()
    .map(|s| s.failed)
    .sum::<u64>();
    for (name, s) in [
        ("hello-world baseline (before)", before),
        ("hello-world baseline (after)", after),
        ("hello-world + 1 log line (before)", before_logged),
        ("hello-world + 1 log line (after)", after_logged),
        ("floor: account creation (before)", floor_before),
        ("floor: account creation (after)", floor_after),
        ("floor: webhook (before)", floor_events_before),
        ("floor: webhook (after)", floor_events_after),
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
        + floor_failed)
}
