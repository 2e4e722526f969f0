//! The black-box harness: builds the worker once, starts `wrangler dev` (real workerd, real
//! Durable Objects, real local D1) on a free port with a fresh persistence folder, applies the
//! D1 migrations, waits until it answers, and stops the whole process group when done.
//!
//! Tests talk to it only over HTTP (through `app-client`) and read D1 only through
//! `wrangler d1 execute --local`, as an operator would.

pub mod bench_worker;
pub mod catalog;
pub mod d1;
pub mod flows;
pub mod paths;
pub mod stand_in;
pub mod wrangler_config;

pub use catalog::test_catalog;
pub use d1::{apply_migrations, d1_execute};
pub use paths::{root, tool, tool_path};
use std::fs;
use std::io::Read;
use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use app_client::{Call, Provider, Signing};
use serde_json::Value;

/// Orchestrator secrets configured for tests: the current one and the one being rotated out.
pub const ORCHESTRATOR_SECRET: &str = "whsec_test_orchestrator_current_0123456789";
pub const ORCHESTRATOR_SECRET_OLD: &str = "whsec_test_orchestrator_previous_987654321";
/// The operator's bearer secret (introspection, operator API).
pub const OPERATOR_SECRET: &str = "op_test_operator_secret_abcdefghijklmnop";
/// Shared with the (simulated) operator login service that signs owner assertions.
pub const OWNER_ASSERTION_SECRET: &str = "test_owner_assertion_secret_0123456789";
/// The Stripe webhook endpoint secret the worker and the stand-in share in tests.
pub const WEBHOOK_SECRET: &str = "whsec_test_webhooks_0123456789abcdef";
/// A second endpoint secret the worker also accepts, as during a rotation (the stand-in signs
/// with [`WEBHOOK_SECRET`]).
pub const WEBHOOK_SECRET_OLD: &str = "whsec_test_webhooks_previous_fedcba98";

/// The key ring sealing API tokens in tests (`TOKEN_ENCRYPTION_KEYS`), and a second key for
/// rotation scenarios.
pub const TOKEN_KEY: &str = "t1:dGVzdF90b2tlbl9lbmNyeXB0aW9uX2tleV8wMDAwMDE=";
pub const TOKEN_KEY_2: &str = "t2:dGVzdF90b2tlbl9lbmNyeXB0aW9uX2tleV8wMDAwMDI=";
/// The key tagging tokens in tests (`TOKEN_MAC_KEY`): cases mint well-formed tokens with it
/// that the worker accepts as its own but no account knows.
pub const TOKEN_MAC_KEY: &str = "test_token_mac_key_0123456789abcdefgh";

/// The operator's login page, as configured for tests.
pub const OWNER_LOGIN_URL: &str = "https://login.test/sign-in";

/// Builds the worker once per test process with `scripts/build.sh`.
pub fn build_worker() {
    static BUILD: Once = Once::new();
    BUILD.call_once(|| {
        if !tool("wrangler").exists() {
            panic!("wrangler is not installed: run `make test` (or scripts/setup.sh) first");
        }
        let status = Command::new("sh")
            .arg(root().join("scripts/build.sh"))
            .current_dir(root())
            .env_remove("APP_SKIP_BUILD")
            .status()
            .expect("run scripts/build.sh");
        assert!(status.success(), "scripts/build.sh failed");
    });
}

/// A free TCP port on loopback (bound then released; good enough for a local test run).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a free port")
}

/// `wrangler dev` serving `dir`'s worker on `127.0.0.1:port` (with a free inspector port, no
/// interactive session, metrics or colour), its local state in `persist_to`, stdout and stderr
/// to `log`, in its own process group (so stopping it also stops workerd). The caller adds
/// its own options and spawns it.
pub fn wrangler_dev(
    port: u16,
    dir: &std::path::Path,
    persist_to: &std::path::Path,
    log: fs::File,
) -> std::io::Result<Command> {
    let log_err = log.try_clone()?;
    let mut command = Command::new(tool("wrangler"));
    command
        .args(["dev", "--ip", "127.0.0.1", "--port", &port.to_string()])
        .args(["--inspector-port", &free_port().to_string()])
        .arg("--show-interactive-dev-session=false")
        .arg("--persist-to")
        .arg(persist_to)
        .current_dir(dir)
        .env("PATH", tool_path())
        .env("APP_SKIP_BUILD", "1")
        .env("CI", "true")
        .env("WRANGLER_SEND_METRICS", "false")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .process_group(0);
    Ok(command)
}

/// Settings for one `wrangler dev` instance.
#[derive(Clone)]
pub struct Options {
    /// Extra `KEY=value` lines for the env file (secrets and vars).
    pub vars: Vec<(String, String)>,
    /// Reuse this persistence folder instead of a fresh one (restart scenarios).
    pub persist_to: Option<PathBuf>,
    /// Reuse this stand-in (restart scenarios keep Stripe's state); else a new one.
    pub stand_in: Option<std::sync::Arc<stand_in::StandIn>>,
    /// Add the test defaults (test catalog, 2 s grace, fault injection...) for vars not given.
    /// Off for the walkthrough, which runs with `.dev.vars.example` like `make dev`.
    pub test_defaults: bool,
    /// Wait for wrangler's "Ready on" log line instead of probing the worker: its first
    /// request is then the caller's (the cold-start benchmark).
    pub ready_by_log: bool,
    /// Rate Limiting bindings (`[[ratelimits]]` of wrangler.toml) to run with another
    /// `simple.limit` (`Some`), or without (`None`): the run gets its own wrangler.toml
    /// ([`wrangler_config::derive`]). Empty: wrangler.toml as it is.
    pub rate_limits: Vec<(String, Option<u32>)>,
    /// D1 databases of the audit trail (`AUDIT_SHARDS`; more than 1: the run's wrangler.toml
    /// binds `AUDIT_DB_1`... and every one gets the migrations).
    pub audit_shards: u32,
}

impl Options {
    /// The configuration of `make dev`: `.dev.vars.example`, with the stand-in's addresses and
    /// webhook secret swapped in (they depend on this run's ports).
    pub fn dev_vars() -> Options {
        let text =
            fs::read_to_string(root().join(".dev.vars.example")).expect("read .dev.vars.example");
        let vars = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .filter_map(|l| l.split_once('='))
            .filter(|(k, _)| {
                !matches!(
                    *k,
                    "STRIPE_API_BASE" | "REGISTRAR_API_BASE" | "STRIPE_WEBHOOK_SECRETS"
                )
            })
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Options {
            vars,
            persist_to: None,
            stand_in: None,
            test_defaults: false,
            ready_by_log: false,
            rate_limits: Vec::new(),
            audit_shards: 1,
        }
    }

    /// Sets `name` to `value`, replacing what was there (a var given here wins over the
    /// harness's wiring and test defaults, e.g. `STRIPE_API_BASE`).
    pub fn set(mut self, name: &str, value: &str) -> Options {
        self.vars.retain(|(k, _)| k != name);
        self.vars.push((name.to_string(), value.to_string()));
        self
    }

    /// Leaves `name` unset: an empty value, which the worker reads as unset, so neither the
    /// wiring nor the test defaults fill it in.
    pub fn unset(self, name: &str) -> Options {
        self.set(name, "")
    }

    /// Runs with the Rate Limiting binding `name` limited to `limit` calls per period.
    pub fn rate_limit(mut self, name: &str, limit: u32) -> Options {
        self.rate_limits.retain(|(k, _)| k != name);
        self.rate_limits.push((name.to_string(), Some(limit)));
        self
    }

    /// Runs without the Rate Limiting binding `name` (a deployment that forgot it).
    pub fn without_rate_limit(mut self, name: &str) -> Options {
        self.rate_limits.retain(|(k, _)| k != name);
        self.rate_limits.push((name.to_string(), None));
        self
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            vars: vec![
                ("ENVIRONMENT".into(), "development".into()),
                (
                    "ORCHESTRATOR_SECRETS".into(),
                    format!("{ORCHESTRATOR_SECRET},{ORCHESTRATOR_SECRET_OLD}"),
                ),
                (
                    "DERIVATION_KEY".into(),
                    "test_code_derivation_key_000000000000".into(),
                ),
                ("TOKEN_MAC_KEY".into(), TOKEN_MAC_KEY.into()),
                ("OPERATOR_SECRET".into(), OPERATOR_SECRET.into()),
                (
                    "OWNER_ASSERTION_SECRET".into(),
                    OWNER_ASSERTION_SECRET.into(),
                ),
                ("OWNER_LOGIN_URL".into(), OWNER_LOGIN_URL.into()),
                ("TOS_VERSION".into(), "2026-11-01".into()),
                ("TOKEN_ENCRYPTION_KEYS".into(), TOKEN_KEY.into()),
            ],
            persist_to: None,
            stand_in: None,
            test_defaults: true,
            ready_by_log: false,
            rate_limits: Vec::new(),
            audit_shards: 1,
        }
    }
}

/// A running `wrangler dev`. Dropping it stops wrangler and workerd.
pub struct DevWorker {
    child: Child,
    handle: WorkerHandle,
    keep: bool,
}

/// What a test needs to talk to a running worker; cheap to clone.
#[derive(Clone)]
pub struct WorkerHandle {
    /// The local Stripe (and registrar, and operator backend) stand-in the worker talks to.
    pub stand_in: std::sync::Arc<stand_in::StandIn>,
    pub base_url: String,
    /// The orchestrator callback the consent page redirects to (a local listener).
    pub callback_url: String,
    pub run_dir: PathBuf,
    pub persist_to: PathBuf,
    log_path: PathBuf,
    /// The run's own wrangler.toml, when it has one; and its number of audit databases.
    config: Option<PathBuf>,
    pub audit_shards: u32,
}

impl std::ops::Deref for DevWorker {
    type Target = WorkerHandle;
    fn deref(&self) -> &WorkerHandle {
        &self.handle
    }
}

/// A local stand-in for the orchestrator's OAuth callback: answers every request with 200, so
/// a browser redirected there lands on a real page whose URL carries `code` and `state`.
/// Returns its port; it runs until the test process exits.
pub fn callback_listener() -> u16 {
    use std::io::Write;
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind callback listener");
    let port = listener.local_addr().expect("callback addr").port();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut stream = stream;
            let mut buf = [0u8; 4096];
            let _ = std::io::Read::read(&mut stream, &mut buf);
            let body = "callback reached";
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    port
}

fn runs_dir() -> PathBuf {
    root().join("test/.runs")
}

impl DevWorker {
    /// Builds (once), prepares a run folder, applies migrations and starts wrangler dev.
    pub fn start(options: Options) -> DevWorker {
        build_worker();
        let port = free_port();
        let stamp = format!("{}-{}-{port}", std::process::id(), app_client::unix_now());
        let run_dir = runs_dir().join(stamp);
        fs::create_dir_all(&run_dir).expect("create run dir");
        let persist_to = options
            .persist_to
            .clone()
            .unwrap_or_else(|| run_dir.join("state"));
        let callback_url = format!("http://127.0.0.1:{}/oauth/callback", callback_listener());
        let stand_in = match &options.stand_in {
            Some(s) => {
                s.set_webhook_url(Some(format!("http://127.0.0.1:{port}/webhooks/stripe")));
                s.clone()
            }
            None => std::sync::Arc::new(stand_in::StandIn::start(stand_in::Config {
                webhook_url: Some(format!("http://127.0.0.1:{port}/webhooks/stripe")),
                webhook_secret: WEBHOOK_SECRET.to_string(),
                ..stand_in::Config::default()
            })),
        };
        let defaults = stand_in::Config::default();
        let mut vars = options.vars.clone();
        if options.audit_shards > 1 && !vars.iter().any(|(k, _)| k == "AUDIT_SHARDS") {
            vars.push(("AUDIT_SHARDS".into(), options.audit_shards.to_string()));
        }
        let wiring = [
            ("STRIPE_API_BASE", stand_in.base_url.clone()),
            (
                "REGISTRAR_API_BASE",
                format!("{}/registrar", stand_in.base_url),
            ),
            (
                "STRIPE_WEBHOOK_SECRETS",
                format!("{WEBHOOK_SECRET},{WEBHOOK_SECRET_OLD}"),
            ),
        ];
        let test_defaults = [
            ("STRIPE_SECRET_KEY", defaults.api_key.clone()),
            ("REGISTRAR_API_KEY", defaults.registrar_key.clone()),
            ("OPERATOR_BACKEND_SECRET", defaults.operator_secret.clone()),
            ("ROOT_ZONE", "apps.example.test".to_string()),
            ("CATALOG", test_catalog(&stand_in.base_url)),
            ("PAYMENT_GRACE_SECONDS", "2".to_string()),
            ("FAULT_INJECTION", "enabled".to_string()),
        ];
        let chosen = if options.test_defaults {
            &test_defaults[..]
        } else {
            &[]
        };
        // A var the caller gave wins over the wiring and the test defaults.
        for (k, v) in wiring.iter().chain(chosen) {
            if !vars.iter().any(|(name, _)| name == k) {
                vars.push((k.to_string(), v.clone()));
            }
        }
        let options = Options { vars, ..options };
        let env_file = run_dir.join("test.env");
        // Values with characters dotenv would interpret (`$`, quotes, `#`, spaces: JSON such as
        // the catalog) go on the command line as --var; the rest into the env file.
        let literal = |v: &str| v.contains(['"', '\'', '#', ' ', '$', '`']);
        let cli_vars: Vec<String> = options
            .vars
            .iter()
            .filter(|(_, v)| literal(v))
            .map(|(k, v)| format!("{k}:{v}"))
            .collect();
        let mut env_text: String = options
            .vars
            .iter()
            .filter(|(_, v)| !literal(v))
            .map(|(k, v)| format!("{k}={v}\n"))
            .collect();
        if !options
            .vars
            .iter()
            .any(|(k, _)| k == "ORCHESTRATOR_CALLBACK_URL")
        {
            env_text.push_str(&format!("ORCHESTRATOR_CALLBACK_URL={callback_url}\n"));
        }
        fs::write(&env_file, env_text).expect("write env file");

        // Another limit for a Rate Limiting binding, or more audit databases, live in
        // wrangler.toml itself: this run gets its own copy.
        let shards = options.audit_shards.max(1);
        let config = (!options.rate_limits.is_empty() || shards > 1).then(|| {
            let toml =
                fs::read_to_string(root().join("wrangler.toml")).expect("read wrangler.toml");
            let toml = wrangler_config::with_audit_shards(&toml, shards);
            let derived = wrangler_config::derive(&toml, &root(), &options.rate_limits)
                .unwrap_or_else(|e| panic!("wrangler.toml for this run: {e}"));
            let path = run_dir.join("wrangler.toml");
            fs::write(&path, derived).expect("write the run's wrangler.toml");
            path
        });
        apply_migrations(&persist_to, config.as_deref(), shards);

        let log_path = run_dir.join("wrangler.log");
        let launch = |port: u16| {
            let log = fs::File::create(&log_path).expect("create log");
            wrangler_dev(port, &root(), &persist_to, log)
                .expect("clone log")
                .args(
                    config
                        .iter()
                        .flat_map(|c| [std::ffi::OsStr::new("--config"), c.as_os_str()]),
                )
                .arg("--env-file")
                .arg(&env_file)
                .args(cli_vars.iter().flat_map(|v| ["--var", v.as_str()]))
                .args(["--log-level", "log"])
                .spawn()
                .expect("start wrangler dev")
        };
        let mut worker = DevWorker {
            child: launch(port),
            keep: false,
            handle: WorkerHandle {
                stand_in,
                base_url: format!("http://127.0.0.1:{port}"),
                callback_url,
                run_dir,
                persist_to: persist_to.clone(),
                log_path: log_path.clone(),
                config: config.clone(),
                audit_shards: shards,
            },
        };
        // A port free when chosen can be taken before this workerd binds it (the other tests'
        // workerd pick their own ports meanwhile): this start then fails, while another worker
        // may answer on the port. Start again on another port, at most twice.
        for attempt in 1.. {
            match worker.wait_ready(options.ready_by_log) {
                Ok(()) => break,
                Err(failed) if attempt < 3 => {
                    eprintln!("wrangler dev did not start ({failed}); again on another port");
                    worker.kill();
                    let port = free_port();
                    worker
                        .handle
                        .stand_in
                        .set_webhook_url(Some(format!("http://127.0.0.1:{port}/webhooks/stripe")));
                    worker.handle.base_url = format!("http://127.0.0.1:{port}");
                    worker.child = launch(port);
                }
                Err(failed) => panic!("{failed}"),
            }
        }
        worker
    }

    /// Waits until this run's wrangler says it listens on its own port and, unless `by_log`,
    /// answers there. `Err` when it failed to start (it exited, or logged an error first).
    fn wait_ready(&mut self, by_log: bool) -> Result<(), String> {
        let provider = self.provider();
        let ready = format!("Ready on {}", self.handle.base_url);
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "wrangler dev exited early ({status}); log:\n{}",
                    self.log_tail(60)
                ));
            }
            let log = fs::read_to_string(&self.handle.log_path).unwrap_or_default();
            let listening = log.contains(&ready);
            if !listening && log.contains("ERROR") {
                return Err(format!(
                    "wrangler dev failed to start; log:\n{}",
                    self.log_tail(60)
                ));
            }
            // 401: serving (unsigned); 503: up but refusing to serve (development settings
            // outside development), which some tests start on purpose.
            if listening
                && (by_log
                    || provider
                        .send(Call::get("/provisioning/health").signing(Signing::Unsigned))
                        .is_ok_and(|reply| reply.status == 401 || reply.status == 503))
            {
                return Ok(());
            }
            assert!(
                Instant::now() < deadline,
                "wrangler dev did not answer within 90 s; log:\n{}",
                self.log_tail(60)
            );
            std::thread::sleep(Duration::from_millis(if by_log { 20 } else { 250 }));
        }
    }

    /// Keeps the run folder (log, D1 state) after stopping, e.g. because a test failed.
    pub fn keep_run_dir(&mut self) {
        self.keep = true;
    }

    /// A cheap copy of what tests need.
    pub fn handle(&self) -> WorkerHandle {
        self.handle.clone()
    }

    /// Stops wrangler and workerd and deletes the run folder, unless `APP_KEEP_RUNS` is set
    /// (its log and D1 state are then left under `test/.runs/` for inspection).
    pub fn stop(&mut self) {
        self.kill();
        if !self.keep && std::env::var_os("APP_KEEP_RUNS").is_none() && !std::thread::panicking() {
            let _ = fs::remove_dir_all(&self.handle.run_dir);
        }
    }

    /// Kills wrangler and workerd at once (SIGKILL, no shutdown), as a crash or a lost machine
    /// would; the persistence folder keeps whatever was durably written.
    pub fn crash(&mut self) {
        let pgid = self.child.id() as i32;
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{pgid}")])
            .status();
        let _ = self.child.wait();
    }

    fn kill(&mut self) {
        let pgid = self.child.id() as i32;
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{pgid}")])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        // Whatever of the group is still there (workerd children included).
        self.crash();
    }
}

impl WorkerHandle {
    /// A client signing with the current orchestrator secret.
    pub fn provider(&self) -> Provider {
        Provider::new(&self.base_url, ORCHESTRATOR_SECRET)
    }

    /// Everything wrangler and the worker printed so far.
    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut f) = fs::File::open(&self.log_path) {
            let _ = f.read_to_string(&mut text);
        }
        text
    }

    /// Runs SQL against the local `AUDIT_DB` (the only audit database, or shard 0) with
    /// `wrangler d1 execute --local` and returns the result rows.
    pub fn d1(&self, sql: &str) -> Vec<Value> {
        self.d1_shard(0, sql)
    }

    /// The same against audit shard `shard` (`AUDIT_DB_<shard>`).
    pub fn d1_shard(&self, shard: u32, sql: &str) -> Vec<Value> {
        let binding = domain::audit_shards::binding(shard);
        d1_execute(&self.persist_to, self.config.as_deref(), &binding, sql)
    }

    /// The same against every audit shard, the rows one after the other.
    pub fn d1_all(&self, sql: &str) -> Vec<Value> {
        (0..self.audit_shards)
            .flat_map(|s| self.d1_shard(s, sql))
            .collect()
    }

    pub fn log_tail(&self, lines: usize) -> String {
        let log = self.log();
        let all: Vec<&str> = log.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for DevWorker {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Runs `node test/stripe_compat.mjs <mode> <json>` with the project's Node and Stripe's
/// official library; returns its stdout.
pub fn stripe_js(mode: &str, input: &Value) -> Result<String, String> {
    let out = Command::new(tool("node"))
        .arg(root().join("test/stripe_compat.mjs"))
        .arg(mode)
        .arg(input.to_string())
        .current_dir(root())
        .env("PATH", tool_path())
        .output()
        .map_err(|e| format!("run node: {e}"))?;
    let stdout = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() {
        Ok(stdout)
    } else {
        Err(format!("{stdout}{}", String::from_utf8_lossy(&out.stderr)))
    }
}
