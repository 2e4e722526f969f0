//! What every scenario of the load benchmark shares: its settings, the closed-loop load and
//! its statistics, the reference workers of `bench/` under their own `wrangler dev`, and the
//! signed requests the floor and ours both answer.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use app_client::{unix_now, Call, Provider, Signing};
use app_tests::bench_worker::{build_bench, BenchWorker};
use app_tests::flows;
use domain::tokens::TokenKind;
use serde_json::json;

#[derive(Clone)]
pub(crate) struct Settings {
    pub quick: bool,
    pub concurrency: usize,
    pub seconds: f64,
    pub warmup: f64,
    pub accounts: usize,
    pub on_disk: bool,
    /// `--only`: only our scenarios whose name contains this (the references always run).
    pub only: Option<String>,
    /// `--var NAME=VALUE`: more of the worker's vars for this run (experiments).
    pub vars: Vec<(String, String)>,
}

impl Settings {
    /// Whether our scenario `name` is measured in this run.
    pub fn wanted(&self, name: &str) -> bool {
        self.only.as_ref().is_none_or(|o| name.contains(o.as_str()))
    }
}

pub(crate) fn settings() -> Result<Settings, String> {
    let mut s = Settings {
        quick: false,
        concurrency: 8,
        seconds: 8.0,
        warmup: 2.0,
        accounts: 1000,
        on_disk: false,
        only: None,
        vars: Vec::new(),
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
            "--only" => s.only = Some(args.next().ok_or("--only needs a scenario name")?),
            "--var" => {
                let var = args.next().ok_or("--var needs NAME=VALUE")?;
                let (k, v) = var.split_once('=').ok_or("--var needs NAME=VALUE")?;
                s.vars.push((k.to_string(), v.to_string()));
            }
            other => return Err(format!("unknown argument {other}; see the module docs")),
        }
    }
    Ok(s)
}

/// What one scenario measured.
pub(crate) struct Stats {
    pub ok: u64,
    pub failed: u64,
    pub elapsed: Duration,
    /// Latencies of the measured successful requests, in microseconds, sorted.
    pub micros: Vec<u64>,
    pub first_error: Option<String>,
}

impl Stats {
    /// Adds another measurement of the same scenario.
    pub fn absorb(&mut self, other: Stats) {
        self.ok += other.ok;
        self.failed += other.failed;
        self.elapsed += other.elapsed;
        self.micros.extend(other.micros);
        self.micros.sort_unstable();
        self.first_error = self.first_error.take().or(other.first_error);
    }
    pub fn rps(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64()
    }
    pub fn percentile(&self, p: f64) -> f64 {
        if self.micros.is_empty() {
            return f64::NAN;
        }
        let i = ((self.micros.len() as f64 - 1.0) * p).round() as usize;
        self.micros[i] as f64 / 1000.0
    }
}

/// What one call of a scenario did.
pub(crate) enum Step {
    Done,
    Failed(String),
    /// Nothing left to call with (a pool of single-use codes ran out): this client stops.
    Exhausted,
}

/// Runs `op` from `states.len()` threads for the warm-up, then for the measured period.
pub(crate) fn load<S: Send>(
    settings: &Settings,
    states: Vec<S>,
    op: impl Fn(&mut S, u64) -> Result<(), String> + Sync,
) -> Stats {
    load_steps(settings, states, |s, n| match op(s, n) {
        Ok(()) => Step::Done,
        Err(e) => Step::Failed(e),
    })
}

/// [`load`], where a client may also stop early ([`Step::Exhausted`]); the measured time is
/// then up to the last client's stop. `op`'s second argument counts calls over all clients,
/// from 0, so it can index a pool.
pub(crate) fn load_steps<S: Send>(
    settings: &Settings,
    states: Vec<S>,
    op: impl Fn(&mut S, u64) -> Step + Sync,
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
                            if matches!(outcome, Step::Exhausted) {
                                break;
                            }
                            continue;
                        }
                        match outcome {
                            Step::Done => micros.push(before.elapsed().as_micros() as u64),
                            Step::Failed(e) => {
                                failed += 1;
                                first_error.get_or_insert(e);
                            }
                            Step::Exhausted => break,
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
pub(crate) fn expect_ok(
    reply: Result<app_client::Reply, app_client::TransportError>,
) -> Result<(), String> {
    match reply {
        Ok(r) if r.is_success() => Ok(()),
        Ok(r) => Err(format!("{}: {}", r.status, r.text())),
        Err(e) => Err(e.to_string()),
    }
}

/// The signing key of the floor worker (`bench/floor/src/lib.rs`, `KEY`).
pub(crate) const FLOOR_KEY: &str = "floor-signing-key";
/// The key that tags the floor's access tokens (`bench/floor/src/lib.rs`, `TOKEN_KEY`).
const FLOOR_TOKEN_KEY: &[u8] = b"floor-token-key";

/// What one pass over the floor measured.
pub(crate) struct FloorStats {
    pub accounts: Stats,
    pub webhooks: Stats,
    pub reads: Stats,
}

/// A reference worker of `bench/` (the hello-world baseline, the floor or the peer) under its
/// own `wrangler dev`, stopped on drop.
pub(crate) struct Reference {
    worker: BenchWorker,
    pub url: String,
}

impl Reference {
    /// Builds `bench/<name>` as the real worker is built (a Rust crate; a JS worker, which
    /// wrangler bundles itself, is not built first), starts it with its local state in `state`
    /// (emptied first) and waits until `probe` answers 200 with `ready`.
    pub fn start(
        name: &str,
        state: &std::path::Path,
        probe: Call,
        ready: &str,
    ) -> Result<Reference, String> {
        build_bench(name)?;
        let _ = std::fs::remove_dir_all(state);
        let worker = BenchWorker::spawn(name, state, "wrangler.log")?;
        let reference = Reference {
            url: worker.url.clone(),
            worker,
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
            reference.worker.log_path.display()
        ))
    }

    /// The hello-world worker, its state in its build folder (it keeps none).
    pub fn hello() -> Result<Reference, String> {
        let state = app_tests::root().join("bench/hello/build/state");
        let probe = Call::get("/").signing(Signing::Unsigned);
        Reference::start("hello", &state, probe, "hello")
    }

    /// Measures `GET path` on the hello-world worker: `/` answers only, `/log` also writes one
    /// log line.
    pub fn measure(&self, settings: &Settings, path: &str) -> Stats {
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
    pub fn floor(tmpfs: &TmpfsState) -> Result<Reference, String> {
        let state = match &tmpfs.0 {
            Some(dir) => dir.join("floor"),
            None => app_tests::root().join("bench/floor/build/state"),
        };
        let probe = Call::new("POST", "/setup").signing(Signing::Unsigned);
        Reference::start("floor", &state, probe, "ready")
    }

    /// Measures account creation on the floor worker, with the same signed request as ours,
    /// then webhooks to 10 of its accounts, with the same events as ours, then resource reads
    /// over as many accounts as clients, with the same signed, bearer-carrying request as ours.
    pub fn measure_floor(&self, settings: &Settings, tag: &str) -> Result<FloorStats, String> {
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
        let webhooks = load(settings, vec![p.clone(); settings.concurrency], |p, n| {
            let account = &ids[n as usize % ids.len()];
            deliver_event(p, "/webhook", FLOOR_KEY, account, n)
        });
        let seeded = (0..settings.concurrency)
            .map(|k| seed_floor_resource(&p, &format!("{tag} {} {k}", std::process::id())))
            .collect::<Result<Vec<_>, _>>()?;
        let readers = (0..settings.concurrency).map(|i| (p.clone(), i)).collect();
        let reads = load(settings, readers, |(p, i): &mut (Provider, usize), _| {
            let (token, id) = &seeded[*i % seeded.len()];
            *i += 1;
            expect_ok(p.get_resource(token, id))
        });
        Ok(FloorStats {
            accounts,
            webhooks,
            reads,
        })
    }
}

/// Gives a new floor account (named from `context`) an access token, minted as ours mints them
/// (`domain::tokens`, tagged with the floor's key), and one complete free plan shaped as ours
/// renders it; returns the token and the resource id.
fn seed_floor_resource(p: &Provider, context: &str) -> Result<(String, String), String> {
    let digest = domain::crypto::sha256(context.as_bytes());
    let mut random = [0u8; 10];
    random.copy_from_slice(&digest[..10]);
    let account = domain::tokens::account_id(&random);
    let minted = domain::tokens::derive(
        TokenKind::Access,
        &account,
        FLOOR_TOKEN_KEY,
        b"bench",
        "access",
    );
    let id = format!("res_{}", domain::crypto::base32(&digest[10..20]));
    let resource = json!({"id": id, "object": "resource", "service_id": "free",
        "project_id": "proj_bench", "status": "complete", "created_at": "2026-01-01T00:00:00Z",
        "complete": {"access_configuration": {"ACCOUNT_ID": account, "PLAN": "free"}}})
    .to_string();
    let seed = json!({"Seed": {"id": id, "resource": resource,
        "token_hash": minted.hash, "expires_at": unix_now() + 3600}});
    let reply = p
        .send(Call::post_json(&format!("/seed/{account}"), &seed))
        .map_err(|e| e.to_string())?;
    if reply.status != 200 {
        return Err(format!("floor seed: {} {}", reply.status, reply.text()));
    }
    // The read answers what was stored, and only to a stored token: another token of this
    // account, with a valid tag but no stored hash, reads nothing.
    let read = p
        .get_resource(&minted.token, &id)
        .map_err(|e| e.to_string())?;
    let other = domain::tokens::derive(TokenKind::Access, &account, FLOOR_TOKEN_KEY, b"x", "x");
    let refused = p
        .get_resource(&other.token, &id)
        .map_err(|e| e.to_string())?;
    if read.status != 200 || read.text() != resource || refused.status != 404 {
        return Err(format!(
            "floor read: {} {} (an unknown token: {})",
            read.status,
            read.text(),
            refused.status
        ));
    }
    Ok((minted.token, id))
}

/// One signed Stripe event (`invoice.upcoming`, unique per process and `n`) for `account`.
pub(crate) fn deliver_event(
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
pub(crate) fn create_account(p: &Provider, tag: &str, n: u64) -> Result<(), String> {
    let pid = std::process::id();
    let id = format!("acctreq_bench_{tag}_{pid}_{n}");
    let email = format!("{tag}{pid}x{n}@bench.example");
    expect_ok(p.account_request(&flows::account_request(&id, &email)))
}

/// The worker's state folder on tmpfs, removed when dropped (also when the run fails early).
pub(crate) struct TmpfsState(pub Option<std::path::PathBuf>);

impl Drop for TmpfsState {
    fn drop(&mut self) {
        if let Some(dir) = &self.0 {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// `f(0)`, ..., `f(n - 1)`, called from `concurrency` threads; the results in no given order.
pub(crate) fn parallel<T: Send>(
    n: usize,
    concurrency: usize,
    f: impl Fn(usize) -> Result<T, String> + Sync,
) -> Result<Vec<T>, String> {
    let next = AtomicU64::new(0);
    let parts: Vec<Result<Vec<T>, String>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..concurrency.min(n).max(1))
            .map(|_| {
                let (next, f) = (&next, &f);
                scope.spawn(move || {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                        if i >= n {
                            return Ok(mine);
                        }
                        mine.push(f(i)?);
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
    for part in parts {
        all.extend(part?);
    }
    Ok(all)
}
