//! Cold start, part 2: the latency of the first requests a fresh isolate serves under workerd
//! (`wrangler dev`, release builds): restart the worker, wait for wrangler's "Ready on" line
//! (no probe: the first request is the measured one), then time one signed
//! `GET /provisioning/health` and, after it, the first account request (the first use of the
//! Durable Objects and D1). Ours against the floor (`bench/floor`: the same two calls doing only
//! the required work) and the hello-world worker (`GET /`), round-robin over trials so that a
//! noisy moment is shared. A second account request in the same isolate (new email again) is
//! printed too: what the first one costs beyond it is the isolate's one-time work.
//!
//! usage: coldstart [--quick] [--trials N] [--fresh]   (default 7 trials; --quick: 1)
//!
//! Then one more restart of the floor and of ours, with workerd's V8 tracing its compilations
//! (`MINIFLARE_WORKERD_V8_FLAGS=--trace-wasm-compilation-times`): V8 compiles each wasm function
//! on its first call, so this counts the functions and bytes of wasm each first request made it
//! compile. Unlike the latencies, those counts do not depend on the machine's noise.
//!
//! Both keep their local state across restarts, as a deployment does: the floor's table is
//! created once before the trials (`POST /setup`), and so are ours (migrations, then one account
//! request). Each trial's account request is for a new email (new directory and account
//! objects on both sides) with an id whose claim lands in the claims object that set-up request
//! created: those 256 objects are long-lived, so in production a first request after a restart
//! meets an existing one (a fresh instance of it, which opens its database). `--fresh` gives
//! ours fresh state on every restart instead (the first request of a brand new deployment,
//! every object and D1 new). The state lives on tmpfs when the machine has one.

use std::path::{Path, PathBuf};
use std::time::Instant;

use app_client::{Call, Provider, Signing};
use app_tests::bench_worker::{build_bench, BenchWorker};
use app_tests::{flows, DevWorker, Options};

/// The floor's signing key (`bench/floor`'s `KEY`).
const FLOOR_KEY: &str = "floor-signing-key";

/// Starts `bench/<name>` (built already) and waits for wrangler's "Ready on" line only.
fn start(name: &str, state: &Path) -> Result<BenchWorker, String> {
    let worker = BenchWorker::spawn(name, state, "coldstart.log")?;
    worker
        .wait_ready()
        .map_err(|e| format!("bench/{name}: {e}"))?;
    Ok(worker)
}

/// Milliseconds `f` takes; its reply must be `ok`.
fn timed(
    what: &str,
    f: impl FnOnce() -> Result<app_client::Reply, app_client::TransportError>,
    ok: impl Fn(&app_client::Reply) -> bool,
) -> Result<f64, String> {
    let t = Instant::now();
    let reply = f().map_err(|e| format!("{what}: {e}"))?;
    let ms = t.elapsed().as_secs_f64() * 1000.0;
    if !ok(&reply) {
        return Err(format!("{what}: {} {}", reply.status, reply.text()));
    }
    Ok(ms)
}

fn state_root() -> PathBuf {
    let shm = Path::new("/dev/shm");
    let base = if shm.is_dir() {
        shm.to_path_buf()
    } else {
        std::env::temp_dir()
    };
    base.join(format!("app-coldstart-{}", std::process::id()))
}

#[derive(Default)]
struct Samples {
    hello: Vec<f64>,
    floor_health: Vec<f64>,
    floor_account: Vec<f64>,
    ours_health: Vec<f64>,
    ours_account: Vec<f64>,
    floor_second: Vec<f64>,
    ours_second: Vec<f64>,
}

fn pct(xs: &[f64], p: f64) -> f64 {
    let mut s = xs.to_vec();
    s.sort_by(f64::total_cmp);
    s[((p / 100.0) * s.len() as f64)
        .floor()
        .min(s.len() as f64 - 1.0) as usize]
}

/// Milliseconds of one account request (`id`, for `email`), which must be answered `200`.
fn account_request(what: &str, p: &Provider, id: &str, email: &str) -> Result<f64, String> {
    let body = flows::account_request(id, email);
    timed(what, || p.account_request(&body), |r| r.status == 200)
}

/// Wasm that V8 compiled on first call (Liftoff) while a worker served one request, from
/// workerd's log with `--trace-wasm-compilation-times`.
#[derive(Default, Clone, Copy)]
struct Compiled {
    functions: usize,
    bytes: u64,
    micros: u64,
}

/// Sums the "Compiled function ... took N μs ...; bodysize B ..." lines of `log`.
fn compiled_in(log: &str) -> Compiled {
    let number_after = |line: &str, key: &str| -> Option<u64> {
        let rest = &line[line.find(key)? + key.len()..];
        rest.split(|c: char| !c.is_ascii_digit())
            .next()?
            .parse()
            .ok()
    };
    let mut c = Compiled::default();
    for line in log.lines().filter(|l| l.contains("Compiled function ")) {
        if let (Some(us), Some(body)) = (
            number_after(line, " took "),
            number_after(line, "bodysize "),
        ) {
            c.functions += 1;
            c.micros += us;
            c.bytes += body;
        }
    }
    c
}

/// What V8 compiled while `request` ran, read from the log `log` returns.
fn traced(
    log: impl Fn() -> String,
    request: impl FnOnce() -> Result<f64, String>,
) -> Result<Compiled, String> {
    let before = log().len();
    request()?;
    // workerd's output reaches the log through wrangler: give it a moment.
    std::thread::sleep(std::time::Duration::from_millis(500));
    Ok(compiled_in(log().get(before..).unwrap_or_default()))
}

/// An account request id of trial `trial` whose claim lands in the object `claims`.
fn id_in(claims: &str, trial: usize) -> String {
    (0..)
        .map(|n| format!("acctreq_cold_{trial}_{}_{n}", std::process::id()))
        .find(|id| domain::account_request::claim_object(id) == claims)
        .unwrap_or_default()
}

fn ours_options(root: &Path, trial: usize, fresh: bool) -> Options {
    let state = if fresh {
        root.join(format!("ours-{trial}"))
    } else {
        root.join("ours")
    };
    // Without the test defaults: the built-in catalog (no test catalog in `CATALOG`), no fault
    // injection, as a deployment from this repository runs.
    Options {
        ready_by_log: true,
        persist_to: Some(state),
        test_defaults: false,
        ..Options::default()
    }
}

fn run(trials: usize, fresh: bool) -> Result<(), String> {
    build_bench("hello")?;
    build_bench("floor")?;
    app_tests::build_worker();
    let root = state_root();
    let _ = std::fs::remove_dir_all(&root);
    let floor_state = root.join("floor");
    {
        // The floor's table, once: its trials then start with it, like ours with migrations.
        let floor = start("floor", &floor_state)?;
        timed(
            "floor /setup",
            || {
                Provider::new(&floor.url, "")
                    .send(Call::new("POST", "/setup").signing(Signing::Unsigned))
            },
            |r| r.status == 200,
        )?;
    }
    // Ours: migrations and one account request, whose claims object the trials' ids land in.
    let setup_id = format!("acctreq_cold_setup_{}", std::process::id());
    let claims = domain::account_request::claim_object(&setup_id);
    if !fresh {
        let ours = DevWorker::start(ours_options(&root, 0, false));
        let email = format!("setup.{}@cold.example", std::process::id());
        account_request(
            "our set-up account request",
            &ours.provider(),
            &setup_id,
            &email,
        )?;
    }
    let mut s = Samples::default();
    for trial in 0..trials {
        let hello = start("hello", &root.join("hello"))?;
        let p = Provider::new(&hello.url, "");
        s.hello.push(timed(
            "hello GET /",
            || p.send(Call::get("/").signing(Signing::Unsigned)),
            |r| r.status == 200,
        )?);
        drop(hello);

        let floor = start("floor", &floor_state)?;
        let p = Provider::new(&floor.url, FLOOR_KEY);
        s.floor_health
            .push(timed("floor health", || p.health(), |r| r.status == 200)?);
        let pid = std::process::id();
        s.floor_account.push(account_request(
            "floor account request",
            &p,
            &format!("acctreq_cold_floor_{trial}_{pid}"),
            &format!("floor{trial}.{pid}@cold.example"),
        )?);
        s.floor_second.push(account_request(
            "floor second account request",
            &p,
            &format!("acctreq_cold_floor2_{trial}_{pid}"),
            &format!("floor{trial}.second.{pid}@cold.example"),
        )?);
        drop(floor);

        let ours = DevWorker::start(ours_options(&root, trial, fresh));
        let p = ours.provider();
        s.ours_health
            .push(timed("our health", || p.health(), |r| r.status == 200)?);
        s.ours_account.push(account_request(
            "our account request",
            &p,
            &id_in(&claims, trial),
            &format!("ours{trial}.{pid}@cold.example"),
        )?);
        s.ours_second.push(account_request(
            "our second account request",
            &p,
            &id_in(&claims, trials + trial),
            &format!("ours{trial}.second.{pid}@cold.example"),
        )?);
        drop(ours);
        eprintln!("cold start: trial {} of {trials} done", trial + 1);
    }
    let compiled = compile_trace(&root, &floor_state, &claims, trials, fresh)?;
    let _ = std::fs::remove_dir_all(&root);

    println!(
        "first requests to a fresh isolate under wrangler dev (workerd), {trials} restarts each; \
         ours {}",
        if fresh {
            "with fresh state on every restart (--fresh)"
        } else {
            "keeping its state, like the floor"
        }
    );
    println!("{:<44} {:>9} {:>9}", "request", "p50 ms", "p90 ms");
    for (name, xs) in [
        ("hello GET / (first request)", &s.hello),
        ("floor signed GET /provisioning/health", &s.floor_health),
        ("floor first account request", &s.floor_account),
        ("ours signed GET /provisioning/health", &s.ours_health),
        ("ours first account request", &s.ours_account),
        (
            "floor second account request (same isolate)",
            &s.floor_second,
        ),
        ("ours second account request (same isolate)", &s.ours_second),
    ] {
        println!("{name:<44} {:>9.1} {:>9.1}", pct(xs, 50.0), pct(xs, 90.0));
    }
    println!(
        "\nwasm V8 compiled on first call while serving (one more restart each, traced with \
         --trace-wasm-compilation-times; ms include the tracing)"
    );
    println!(
        "{:<44} {:>9} {:>9} {:>9}",
        "request", "functions", "KB", "ms"
    );
    for (name, c) in [
        ("floor signed GET /provisioning/health", compiled[0]),
        ("floor first account request", compiled[1]),
        ("ours signed GET /provisioning/health", compiled[2]),
        ("ours first account request", compiled[3]),
    ] {
        println!(
            "{name:<44} {:>9} {:>9.1} {:>9.1}",
            c.functions,
            c.bytes as f64 / 1024.0,
            c.micros as f64 / 1000.0
        );
    }
    let ratio = |a: &[f64], b: &[f64]| pct(a, 50.0) / pct(b, 50.0);
    println!(
        "ours / floor (p50): health {:.2}x, first account request {:.2}x (target: at most 1.5x)",
        ratio(&s.ours_health, &s.floor_health),
        ratio(&s.ours_account, &s.floor_account)
    );
    Ok(())
}

/// What a worker just started compiled for its first signed health call, then for its first
/// account request (`id`, for `email`); `log` reads its log.
fn first_two(
    log: impl Fn() -> String,
    p: &Provider,
    id: &str,
    email: &str,
) -> Result<[Compiled; 2], String> {
    let health = traced(&log, || timed("health", || p.health(), |r| r.status == 200))?;
    let account = traced(&log, || account_request("account request", p, id, email))?;
    Ok([health, account])
}

/// One more restart of the floor and of ours with V8 tracing its compilations: what each
/// compiled for its first health call and its first account request.
fn compile_trace(
    root: &Path,
    floor_state: &Path,
    claims: &str,
    trials: usize,
    fresh: bool,
) -> Result<[Compiled; 4], String> {
    // Read by wrangler's Miniflare when it starts workerd; nothing else runs meanwhile.
    std::env::set_var(
        "MINIFLARE_WORKERD_V8_FLAGS",
        "--trace-wasm-compilation-times",
    );
    let pid = std::process::id();
    let traced_run = || -> Result<[Compiled; 4], String> {
        let floor = start("floor", floor_state)?;
        let [floor_health, floor_account] = first_two(
            || std::fs::read_to_string(&floor.log_path).unwrap_or_default(),
            &Provider::new(&floor.url, FLOOR_KEY),
            &format!("acctreq_cold_floor_traced_{pid}"),
            &format!("floor.traced.{pid}@cold.example"),
        )?;
        drop(floor);
        let ours = DevWorker::start(ours_options(root, trials, fresh));
        let [ours_health, ours_account] = first_two(
            || ours.log(),
            &ours.provider(),
            &id_in(claims, 2 * trials),
            &format!("ours.traced.{pid}@cold.example"),
        )?;
        Ok([floor_health, floor_account, ours_health, ours_account])
    };
    let result = traced_run();
    std::env::remove_var("MINIFLARE_WORKERD_V8_FLAGS");
    result
}

fn main() {
    let mut trials = 7;
    let mut fresh = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => trials = 1,
            "--fresh" => fresh = true,
            "--trials" => {
                trials = args
                    .next()
                    .and_then(|v| v.parse().ok())
                    .filter(|n| *n > 0)
                    .unwrap_or_else(|| {
                        eprintln!("--trials needs a positive number");
                        std::process::exit(2)
                    })
            }
            other => {
                eprintln!("usage: coldstart [--quick] [--trials N] [--fresh] (unknown {other:?})");
                std::process::exit(2);
            }
        }
    }
    if let Err(e) = run(trials, fresh) {
        eprintln!("coldstart: {e}");
        std::process::exit(1);
    }
}
