//! The cost model (issue 17 part 4): what each flow makes Cloudflare bill, measured under
//! `wrangler dev`, priced per million flows, and the D1 ceiling at 1,000 sign-ups a second.
//!
//! usage: cost [--quick] [--runs N] [--shards N]
//!   --runs N    runs of each flow (default 10; --quick: 2)
//!   --shards N  audit databases to run with (default 1)
//!
//! Method. The worker runs with `COST_METER=enabled` (development only, `src/meter.rs`): it
//! counts its invocations, Durable Object requests (fetches and alarms) with the rows their
//! SQLite statements read and wrote (the runtime's own cursor counters), D1 statements and
//! round trips with the rows D1 reports read and written (`meta`), and outbound calls, and
//! logs its running totals after each invocation. For each flow the tool first prepares what
//! the flow needs (an account, a plan, a payment token at the stand-in), waits until the
//! worker is idle (no meter line for 1.5 s: the outbox flush and alarms have run, and the
//! stand-in's webhooks were delivered), then runs the flow, waits again, and takes the
//! difference. CPU is the CPU time of the workerd process (`/proc`, user + system) over the
//! same window, less its idle rate: an upper bound of what Cloudflare bills, since workerd
//! here also runs local D1, local storage and the HTTP entry worker; "net" subtracts, per
//! invocation, workerd's CPU for the cheapest request (an unsigned health check, refused).
//! D1's size per sign-up is its growth over `10 x runs` more sign-ups (D1 reports whole pages).

use std::time::{Duration, Instant};

use app_client::Provider;
use app_tests::flows::{self, Tokens};
use app_tests::{DevWorker, Options, WorkerHandle, WEBHOOK_SECRET};
use domain::cost::{self, Counts, Meter, D1, WORKERS_PAID};
use serde_json::{json, Value};

/// Assumed production latency of one outbound call (Stripe, a registrar) while the account
/// object waits for it; the local stand-in answers in about a millisecond.
const OUTBOUND_WAIT_S: f64 = 0.25;

struct Settings {
    runs: u32,
    shards: u32,
}

fn settings() -> Result<Settings, String> {
    let mut s = Settings {
        runs: 10,
        shards: 1,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut number = |name: &str| {
            args.next()
                .and_then(|v| v.parse::<u32>().ok())
                .filter(|v| *v > 0)
                .ok_or_else(|| format!("{name} needs a positive integer"))
        };
        match arg.as_str() {
            "--quick" => s.runs = 2,
            "--runs" => s.runs = number("--runs")?,
            "--shards" => s.shards = number("--shards")?,
            other => return Err(format!("unknown argument {other}; see the module docs")),
        }
    }
    Ok(s)
}

/// The worker's running totals: the last meter line of each isolate, summed, and how many
/// meter lines there were.
fn meter(w: &WorkerHandle) -> (Meter, usize) {
    let mut last: Vec<(u64, Meter)> = Vec::new();
    let mut lines = 0;
    for line in w.log().lines() {
        let Some(at) = line.find("{\"cost_meter\"") else {
            continue;
        };
        let Ok(v) = serde_json::from_str::<Value>(&line[at..]) else {
            continue;
        };
        let (Some(isolate), Ok(m)) = (
            v["isolate"].as_u64(),
            serde_json::from_value::<Meter>(v["cost_meter"].clone()),
        ) else {
            continue;
        };
        lines += 1;
        match last.iter_mut().find(|(i, _)| *i == isolate) {
            Some(slot) => slot.1 = m,
            None => last.push((isolate, m)),
        }
    }
    let total = last
        .iter()
        .fold(Meter::default(), |acc, (_, m)| acc.plus(m));
    (total, lines)
}

/// Waits until no meter line came for 1.5 s (30 s at most).
fn settle(w: &WorkerHandle) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = meter(w).1;
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        let now = meter(w).1;
        if now != seen {
            seen = now;
            quiet_since = Instant::now();
        } else if quiet_since.elapsed() >= Duration::from_millis(1500) {
            return;
        }
    }
}

/// CPU time of the workerd processes of the run whose state is in `persist_to` (ms).
struct Cpu {
    pids: Vec<u32>,
    tick_ms: f64,
}

impl Cpu {
    fn find(persist_to: &std::path::Path) -> Result<Cpu, String> {
        let needle = persist_to.display().to_string();
        let procs: Vec<(u32, String, i64)> = std::fs::read_dir("/proc")
            .map_err(|e| format!("/proc: {e}"))?
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter_map(|pid| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                let comm = stat[stat.find('(')? + 1..stat.rfind(')')?].to_string();
                let pgrp = stat[stat.rfind(')')? + 2..]
                    .split(' ')
                    .nth(2)?
                    .parse()
                    .ok()?;
                Some((pid, comm, pgrp))
            })
            .collect();
        // wrangler (its command line names the state folder) leads the process group.
        let group = procs
            .iter()
            .find(|(pid, _, _)| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).contains(&needle))
            })
            .map(|(_, _, pgrp)| *pgrp)
            .ok_or("no wrangler process for this run")?;
        let pids: Vec<u32> = procs
            .iter()
            .filter(|(_, comm, pgrp)| *pgrp == group && comm.starts_with("workerd"))
            .map(|(pid, _, _)| *pid)
            .collect();
        if pids.is_empty() {
            return Err("no workerd process in wrangler's group".into());
        }
        let hz = std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .trim()
                    .parse::<f64>()
                    .ok()
            })
            .unwrap_or(100.0);
        Ok(Cpu {
            pids,
            tick_ms: 1000.0 / hz,
        })
    }

    fn ms(&self) -> f64 {
        self.pids
            .iter()
            .filter_map(|pid| {
                let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
                let fields: Vec<&str> = stat[stat.rfind(')')? + 2..].split(' ').collect();
                // utime and stime: fields 14 and 15 of stat, 11 and 12 after the name.
                let ticks: f64 =
                    fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
                Some(ticks * self.tick_ms)
            })
            .sum()
    }
}

/// One flow: its name, what it needs first (not measured), and the flow itself.
struct Flow {
    name: &'static str,
    prepare: fn(&Provider, &WorkerHandle, u32) -> Result<Value, String>,
    run: fn(&Provider, &WorkerHandle, &Value) -> Result<(), String>,
}

fn account(p: &Provider, tag: &str, n: u32) -> Result<Tokens, String> {
    let pid = std::process::id();
    flows::new_account(
        p,
        &format!("acctreq_cost_{tag}_{pid}_{n}"),
        &format!("cost{tag}{pid}x{n}@bench.example"),
    )
}

fn with_free_plan(p: &Provider, tag: &str, n: u32) -> Result<(Tokens, String), String> {
    let t = account(p, tag, n)?;
    let plan = flows::create_complete(
        p,
        &t.access,
        &json!({"service_id": "free", "project_id": "proj_cost"}),
    )?;
    Ok((t, plan))
}

fn payment(w: &WorkerHandle, max: u64) -> Value {
    let token = w
        .stand_in
        .create_granted_token("usd", max, app_client::unix_now() + 3600, None);
    json!({"type": "stripe_payment_token", "stripe_payment_token": token})
}

fn access(v: &Value) -> Result<&str, String> {
    v["access"].as_str().ok_or_else(|| "no access token".into())
}

fn status_of(reply: &app_client::Reply) -> String {
    reply.json()["status"].as_str().unwrap_or("").to_string()
}

const FLOWS: [Flow; 6] = [
    Flow {
        name: "new account + token",
        prepare: |_, _, _| Ok(Value::Null),
        run: |p, _, _| {
            let n = rand_n();
            account(p, "new", n).map(|_| ())
        },
    },
    Flow {
        name: "paid plan (first month charged)",
        prepare: |p, w, n| {
            let t = account(p, "paid", n)?;
            Ok(json!({"access": t.access, "pay": payment(w, 5000)}))
        },
        run: |p, _, v| {
            let body = json!({"service_id": "paid", "project_id": "proj_cost", "payment_credentials": v["pay"]});
            let reply = p
                .create_resource(access(v)?, &body)
                .map_err(|e| e.to_string())?;
            match status_of(&reply).as_str() {
                "complete" | "pending" => Ok(()),
                _ => Err(format!("paid plan: {}", reply.text())),
            }
        },
    },
    Flow {
        name: "API token",
        prepare: |p, _, n| {
            let (t, _) = with_free_plan(p, "tok", n)?;
            Ok(json!({"access": t.access}))
        },
        run: |p, _, v| {
            let body = json!({"service_id": "api_token", "project_id": "proj_cost",
                "configuration": {"scopes": ["deploy:write"], "label": "ci"}});
            flows::create_complete(p, access(v)?, &body).map(|_| ())
        },
    },
    Flow {
        name: "domain purchase (quote, buy)",
        prepare: |p, w, n| {
            let (t, _) = with_free_plan(p, "dom", n)?;
            Ok(json!({"access": t.access, "pay": payment(w, 10_000), "n": n}))
        },
        run: |p, _, v| {
            let label = format!("cost{}x{}", std::process::id(), v["n"]);
            let body = |info: Value| {
                json!({"service_id": "domain", "project_id": "proj_cost",
                    "configuration": {"domain_query": label}, "payment_credentials": v["pay"],
                    "submitted_information": info})
            };
            let quoted = p
                .create_resource(access(v)?, &body(Value::Null))
                .map_err(|e| e.to_string())?
                .json();
            let name = quoted["needs_information"]["schema"]["properties"]["domain"]["enum"][0]
                .as_str()
                .ok_or_else(|| format!("no quote: {quoted}"))?
                .to_string();
            let amount = quoted["needs_information"]["quote"]["candidates"][0]["amount"]
                .as_u64()
                .unwrap_or(1200);
            let bought = p
                .create_resource(access(v)?, &body(json!({"domain": name, "amount": amount})))
                .map_err(|e| e.to_string())?;
            match status_of(&bought).as_str() {
                "complete" | "pending" => Ok(()),
                _ => Err(format!("domain purchase: {}", bought.text())),
            }
        },
    },
    Flow {
        name: "one Stripe webhook",
        prepare: |p, _, n| {
            let t = account(p, "hook", n)?;
            Ok(json!({"account": t.account, "n": n}))
        },
        run: |p, _, v| {
            let n = v["n"].as_u64().unwrap_or(0);
            let account = v["account"].as_str().unwrap_or_default();
            let body = json!({"id": format!("evt_cost_{}_{n}", std::process::id()),
                "object": "event", "api_version": "2026-04-22.preview",
                "created": app_client::unix_now(), "livemode": false, "type": "invoice.upcoming",
                "data": {"object": {"id": format!("in_cost_{n}"), "object": "invoice",
                    "metadata": {"account_id": account}}}})
            .to_string();
            let signature = domain::signature::sign_header(
                WEBHOOK_SECRET.as_bytes(),
                app_client::unix_now(),
                body.as_bytes(),
            );
            let reply = p
                .send(
                    app_client::Call::new("POST", "/webhooks/stripe")
                        .raw_body(body.into_bytes(), "application/json")
                        .signing(app_client::Signing::Raw(signature))
                        .api_version(None),
                )
                .map_err(|e| e.to_string())?;
            (reply.status == 200)
                .then_some(())
                .ok_or_else(|| format!("webhook: {}", reply.text()))
        },
    },
    Flow {
        name: "one resource read",
        prepare: |p, _, n| {
            let (t, plan) = with_free_plan(p, "read", n)?;
            Ok(json!({"access": t.access, "plan": plan}))
        },
        run: |p, _, v| {
            let reply = p
                .get_resource(access(v)?, v["plan"].as_str().unwrap_or_default())
                .map_err(|e| e.to_string())?;
            (reply.status == 200)
                .then_some(())
                .ok_or_else(|| format!("read: {}", reply.text()))
        },
    },
];

/// A number for a new account request (unique within the run).
fn rand_n() -> u32 {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(1_000_000);
    N.fetch_add(1, Ordering::Relaxed)
}

struct Measured {
    name: &'static str,
    counts: Counts,
    meter: Meter,
    runs: f64,
    stand_in_calls: f64,
}

fn measure(
    flow: &Flow,
    p: &Provider,
    w: &WorkerHandle,
    cpu: &Cpu,
    idle_ms_per_s: f64,
    runs: u32,
) -> Result<Measured, String> {
    let mut total = Meter::default();
    let mut cpu_ms = 0.0;
    let mut stand_in = 0usize;
    for n in 0..runs {
        let input = (flow.prepare)(p, w, n)?;
        settle(w);
        let (before, _) = meter(w);
        let calls_before = w.stand_in.requests().len();
        let (cpu_before, t0) = (cpu.ms(), Instant::now());
        (flow.run)(p, w, &input)?;
        settle(w);
        let spent = cpu.ms() - cpu_before - idle_ms_per_s * t0.elapsed().as_secs_f64();
        cpu_ms += spent.max(0.0);
        let grown = meter(w).0.since(&before);
        // Sizes are levels: the runs' growths add up.
        let bytes = total.d1_bytes + grown.d1_bytes;
        total = total.plus(&grown);
        total.d1_bytes = bytes;
        stand_in += w.stand_in.requests().len() - calls_before;
    }
    Ok(Measured {
        name: flow.name,
        counts: Counts::average(&total, runs, cpu_ms, OUTBOUND_WAIT_S),
        meter: total,
        runs: f64::from(runs),
        stand_in_calls: stand_in as f64 / f64::from(runs),
    })
}

fn main() {
    let s = match settings() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cost: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(&s) {
        eprintln!("cost: {e}");
        std::process::exit(1);
    }
}

fn run(s: &Settings) -> Result<(), String> {
    let shm = std::path::Path::new("/dev/shm");
    let state = shm
        .is_dir()
        .then(|| shm.join(format!("app-cost-{}", std::process::id())));
    let mut options = Options::default().rate_limit("ORCHESTRATOR_LIMITER", 1_000_000_000);
    for (k, v) in [
        ("ACCOUNT_RATE_LIMIT", "1000000000"),
        ("FAULT_INJECTION", "disabled"),
        ("COST_METER", "enabled"),
    ] {
        options.vars.push((k.into(), v.into()));
    }
    options.persist_to = state.clone();
    options.audit_shards = s.shards;
    let worker = DevWorker::start(options);
    let result = measure_all(s, &worker);
    drop(worker);
    if let Some(dir) = state {
        let _ = std::fs::remove_dir_all(dir);
    }
    result
}

fn measure_all(s: &Settings, worker: &DevWorker) -> Result<(), String> {
    let p = worker.provider();
    let w = worker.handle();
    // Without /proc (or workerd in it) every count still is measured; CPU reads 0.
    let cpu = Cpu::find(&w.persist_to).unwrap_or_else(|e| {
        println!("CPU not measured: {e}");
        Cpu {
            pids: Vec::new(),
            tick_ms: 10.0,
        }
    });
    // Warm the isolate (compiles the code the flows use), then the idle rate.
    for n in 0..2 {
        with_free_plan(&p, "warm", n)?;
    }
    settle(&w);
    let (idle_before, t0) = (cpu.ms(), Instant::now());
    std::thread::sleep(Duration::from_secs(3));
    let idle_ms_per_s = (cpu.ms() - idle_before) / t0.elapsed().as_secs_f64();
    println!(
        "cost model: {} runs of each flow, {} audit database(s), workerd idle {idle_ms_per_s:.2} CPU-ms/s",
        s.runs, s.shards
    );
    let mut measured = Vec::new();
    for flow in &FLOWS {
        measured.push(measure(flow, &p, &w, &cpu, idle_ms_per_s, s.runs)?);
    }
    let floor = invocation_floor(&p, &w, &cpu, idle_ms_per_s, s.runs * 10)?;
    print_counts(&measured, floor);
    print_prices(&measured);
    // The meter keeps the largest size any database reported: one database's growth only.
    if s.shards > 1 {
        println!("\n(D1 size per sign-up is measured with one audit database only: run without --shards)");
    }
    let bytes = match s.shards {
        1 => bytes_per_signup(&p, &w, s.runs * 10)?,
        _ => 0.0,
    };
    print_ceiling(&measured[0], bytes);
    Ok(())
}

/// workerd's CPU for the cheapest invocation (an unsigned health check, refused with `401`
/// before anything is read): what the local runtime spends on any request (its entry worker,
/// HTTP), ours or not.
fn invocation_floor(
    p: &Provider,
    w: &WorkerHandle,
    cpu: &Cpu,
    idle_ms_per_s: f64,
    n: u32,
) -> Result<f64, String> {
    settle(w);
    let (before, t0) = (cpu.ms(), Instant::now());
    for _ in 0..n {
        let call =
            app_client::Call::get("/provisioning/health").signing(app_client::Signing::Unsigned);
        let reply = p.send(call).map_err(|e| e.to_string())?;
        if reply.status != 401 {
            return Err(format!("unsigned health answered {}", reply.status));
        }
    }
    settle(w);
    let spent = cpu.ms() - before - idle_ms_per_s * t0.elapsed().as_secs_f64();
    Ok(spent.max(0.0) / f64::from(n))
}

/// D1's growth per sign-up over `n` sign-ups (D1 reports its size in whole pages, so one
/// sign-up alone would read as 0 or 4,096 bytes).
fn bytes_per_signup(p: &Provider, w: &WorkerHandle, n: u32) -> Result<f64, String> {
    settle(w);
    let (before, _) = meter(w);
    for _ in 0..n {
        account(p, "size", rand_n())?;
    }
    settle(w);
    Ok(meter(w).0.since(&before).d1_bytes as f64 / f64::from(n))
}

fn print_counts(m: &[Measured], floor: f64) {
    println!(
        "\nper flow (mean of the runs; CPU: workerd process, an upper bound; net: less {floor:.1} ms per invocation, workerd's CPU for an unsigned health check):"
    );
    println!(
        "{:<32} {:>6} {:>6} {:>8} {:>8} {:>8} {:>6} {:>6} {:>8} {:>8} {:>6} {:>8} {:>8} {:>6}",
        "flow",
        "invoc",
        "DO req",
        "DO ms",
        "DO rd",
        "DO wr",
        "D1 q",
        "D1 rt",
        "D1 rd",
        "D1 wr",
        "subreq",
        "stand-in",
        "CPU ms",
        "net"
    );
    for f in m {
        let c = &f.counts;
        println!(
            "{:<32} {:>6.1} {:>6.1} {:>8.1} {:>8.1} {:>8.1} {:>6.1} {:>6.1} {:>8.1} {:>8.1} {:>6.1} {:>8.1} {:>8.1} {:>6.1}",
            f.name,
            c.invocations,
            c.do_requests,
            f.meter.do_active_ms as f64 / f.runs,
            c.do_rows_read,
            c.do_rows_written,
            c.d1_queries,
            c.d1_round_trips,
            c.d1_rows_read,
            c.d1_rows_written,
            c.subrequests,
            f.stand_in_calls,
            c.cpu_ms,
            (c.cpu_ms - floor * c.invocations).max(0.0)
        );
    }
}

fn print_prices(m: &[Measured]) {
    let p = &WORKERS_PAID;
    println!(
        "\n1 million of each flow at Workers Paid prices (Cloudflare, as of {}), USD beyond the included amounts;",
        cost::PRICES_AS_OF
    );
    println!(
        "object duration: measured active time + {OUTBOUND_WAIT_S} s per outbound call, x 128 MB"
    );
    println!(
        "{:<32} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9} {:>10} {:>14}",
        "flow", "requests", "CPU", "DO req", "DO dur", "DO rows", "D1 rows", "total", "month of 1M"
    );
    for f in m {
        let b = cost::marginal(&f.counts, 1e6, p);
        let month = cost::month(&f.counts, 1e6, p).total() + p.base_per_month;
        println!(
            "{:<32} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>9.2} {:>10.2} {:>14.2}",
            f.name,
            b.requests,
            b.cpu,
            b.do_requests,
            b.do_duration,
            b.do_rows,
            b.d1_rows,
            b.total(),
            month
        );
    }
}

fn print_ceiling(signup: &Measured, bytes: f64) {
    let c = &signup.counts;
    println!(
        "\nD1 at 1,000 sign-ups a second (a sign-up = new account + token: {:.1} statements in {:.1} round trips, {:.1} rows written, ~{bytes:.0} bytes of database each):",
        c.d1_queries, c.d1_round_trips, c.d1_rows_written
    );
    println!(
        "{:>7} {:>14} {:>14} {:>14} {:>12} {:>18} {:>18}",
        "shards",
        "queries/s each",
        "trips/s each",
        "rows wr/s each",
        "of 1,000 q/s",
        "ceiling signups/s",
        "M signups to 10 GB"
    );
    for shards in [1u32, 2, 4, 8, 16, 32] {
        let l = cost::d1_load(c, 1000.0, shards, bytes, &D1);
        println!(
            "{shards:>7} {:>14.0} {:>14.0} {:>14.0} {:>11.0}% {:>18.0} {:>18.1}",
            l.queries_per_s,
            l.round_trips_per_s,
            l.rows_written_per_s,
            l.utilisation * 100.0,
            l.ceiling_per_s,
            l.flows_to_full / 1e6
        );
    }
    println!(
        "shards for 1,000 sign-ups/s at most 50% busy: {}; at most 100%: {}",
        cost::shards_needed(c, 1000.0, 0.5, &D1),
        cost::shards_needed(c, 1000.0, 1.0, &D1)
    );
}
