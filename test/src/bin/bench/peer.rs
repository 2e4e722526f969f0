//! The peer of our token endpoint: `bench/peer-oauth`, a minimal JS worker around Cloudflare's
//! `@cloudflare/workers-oauth-provider` (the OAuth provider of Cloudflare's own MCP servers),
//! with its token endpoint and its storage (one KV namespace) as the library ships them, under
//! its own `wrangler dev`, in the same run as ours (BENCHMARKS.md, "The peer").
//!
//! Both grants of `POST /oauth/token` are measured on each side, with the same concurrency:
//! - **refresh**: one grant per client, each client rotating its own pair (the next call uses
//!   the refresh token the last answer returned), as a client keeps a session alive;
//! - **code exchange**: a pool of fresh single-use codes, each exchanged once. Ours get theirs
//!   from account requests for new emails (one new account each, as the orchestrator gets
//!   them); the peer's are minted by its set-up route through the library's own
//!   `parseAuthRequest` + `completeAuthorization` (one new user each), as a consent page would.
//!   The pool holds what the side's refresh rate would use over the warm-up and the measured
//!   time, and half again; a client that finds it empty stops, and the measured time ends
//!   with the last client (the elapsed seconds are printed).
//!
//! The client authenticates on every call on both sides: ours is the orchestrator's signed
//! client (`Stripe-Signature`, HMAC-SHA256 of the body), the peer's a confidential client
//! registered with `client_secret_basic` (`Authorization: Basic`), which the library lets
//! exchange a code without PKCE when it names the registered `redirect_uri`.

use std::time::Duration;

use app_client::{Call, Provider, Reply, Signing};
use app_tests::flows;
use serde_json::json;

use crate::harness::{
    expect_ok, load, load_steps, parallel, Reference, Settings, Stats, Step, TmpfsState,
};

/// The redirect URI the peer's client is registered with (`bench/peer-oauth/src/index.js`).
const REDIRECT_URI: &str = "https://orchestrator.example/callback";

/// What one side measured for the two grants.
pub(crate) struct Grants {
    pub exchange: Stats,
    pub refresh: Stats,
}

/// The peer worker and its registered client.
pub(crate) struct Peer {
    reference: Reference,
    client_id: String,
    /// `Basic <base64(id:secret)>`.
    authorization: String,
}

/// A set-up call to the peer (unsigned, no `API-Version`).
fn setup_call(call: Call) -> Call {
    call.signing(Signing::Unsigned).api_version(None)
}

impl Peer {
    /// Starts the peer with its local state (KV) next to ours (tmpfs unless `--on-disk`) and
    /// registers its client.
    pub fn start(tmpfs: &TmpfsState) -> Result<Peer, String> {
        let state = match &tmpfs.0 {
            Some(dir) => dir.join("peer-oauth"),
            None => app_tests::root().join("bench/peer-oauth/build/state"),
        };
        let probe = setup_call(Call::new("POST", "/setup"));
        let reference = Reference::start("peer-oauth", &state, probe, "ready")?;
        let reply = Provider::new(&reference.url, "")
            .send(setup_call(Call::new("POST", "/setup/client")))
            .map_err(|e| e.to_string())?;
        let body = reply.json();
        match (body["client_id"].as_str(), body["authorization"].as_str()) {
            (Some(id), Some(authorization)) => Ok(Peer {
                client_id: id.to_string(),
                authorization: authorization.to_string(),
                reference,
            }),
            _ => Err(format!("peer /setup/client: {}", reply.text())),
        }
    }

    fn client(&self) -> Provider {
        Provider::new(&self.reference.url, "")
    }

    /// `n` fresh codes, minted 50 per set-up call, `concurrency` calls at a time.
    fn mint(&self, prefix: &str, n: usize, concurrency: usize) -> Result<Vec<String>, String> {
        const BATCH: usize = 50;
        let p = self.client();
        let batches = parallel(n.div_ceil(BATCH), concurrency, |b| {
            let body = json!({"client_id": self.client_id, "prefix": format!("{prefix}{b}u"),
                              "count": BATCH.min(n - b * BATCH)});
            let reply = p
                .send(setup_call(Call::post_json("/setup/codes", &body)))
                .map_err(|e| e.to_string())?;
            serde_json::from_value::<Vec<String>>(reply.json()["codes"].clone())
                .map_err(|_| format!("peer /setup/codes: {}: {}", reply.status, reply.text()))
        })?;
        Ok(batches.into_iter().flatten().collect())
    }

    /// `POST /oauth/token` as the peer's client sends it.
    fn token(&self, p: &Provider, fields: &[(&str, &str)]) -> Result<Reply, String> {
        let call = Call::post_form("/oauth/token", fields)
            .signing(Signing::Unsigned)
            .api_version(None)
            .header("Authorization", &self.authorization);
        p.send(call).map_err(|e| e.to_string())
    }

    fn exchange(&self, p: &Provider, code: &str) -> Result<Reply, String> {
        let fields = [
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", REDIRECT_URI),
        ];
        self.token(p, &fields)
    }

    fn refresh(&self, p: &Provider, refresh_token: &str) -> Result<Reply, String> {
        let fields = [
            ("grant_type", "refresh_token"),
            ("refresh_token", refresh_token),
        ];
        self.token(p, &fields)
    }

    /// Refresh, then code exchange (its pool sized from the refresh rate just measured).
    pub fn measure(&self, settings: &Settings, tag: &str) -> Result<Grants, String> {
        let c = settings.concurrency;
        let p = self.client();
        let mut chains = Vec::with_capacity(c);
        for code in self.mint(&format!("{tag}r"), c, c)? {
            chains.push((p.clone(), refresh_token(&self.exchange(&p, &code)?)?));
        }
        let refresh = load(settings, chains, |(p, r), _| {
            *r = refresh_token(&self.refresh(p, r)?)?;
            Ok(())
        });
        let pool = self.mint(&format!("{tag}x"), pool_size(settings, refresh.rps()), c)?;
        settle();
        let exchange = drain(settings, &p, &pool, |p, code| {
            let reply = self.exchange(p, code)?;
            if reply.status == 200 {
                Ok(())
            } else {
                Err(format!("{}: {}", reply.status, reply.text()))
            }
        });
        Ok(Grants { exchange, refresh })
    }
}

/// The refresh token of a `200` token response.
fn refresh_token(reply: &Reply) -> Result<String, String> {
    match (reply.status, reply.json()["refresh_token"].as_str()) {
        (200, Some(token)) => Ok(token.to_string()),
        _ => Err(format!("{}: {}", reply.status, reply.text())),
    }
}

/// How many codes a code-exchange scenario gets: what `refresh_rps` would use over the
/// warm-up and the measured time, and half again (at most 200 in quick mode).
fn pool_size(settings: &Settings, refresh_rps: f64) -> usize {
    let n = (refresh_rps * (settings.warmup + settings.seconds) * 1.5).ceil() as usize;
    let most = if settings.quick { 200 } else { 30_000 };
    n.clamp(settings.concurrency * 4, most)
}

/// Lets what a pool's set-up left behind (our accounts' first alarms) pass before measuring.
fn settle() {
    std::thread::sleep(Duration::from_secs(1));
}

/// Exchanges each code of `pool` once, from `concurrency` clients, until the time is up or the
/// pool is empty.
fn drain(
    settings: &Settings,
    p: &Provider,
    pool: &[String],
    exchange: impl Fn(&Provider, &str) -> Result<(), String> + Sync,
) -> Stats {
    let clients = vec![p.clone(); settings.concurrency];
    load_steps(settings, clients, |p, n| match pool.get(n as usize) {
        None => Step::Exhausted,
        Some(code) => match exchange(p, code) {
            Ok(()) => Step::Done,
            Err(e) => Step::Failed(e),
        },
    })
}

/// Our code exchange, signed as the orchestrator sends it; the pool is sized from our refresh
/// rate (`refresh_rps`) and minted by account requests for new emails.
pub(crate) fn ours_exchange(
    p: &Provider,
    settings: &Settings,
    refresh_rps: f64,
) -> Result<Stats, String> {
    let pid = std::process::id();
    let pool = parallel(
        pool_size(settings, refresh_rps),
        settings.concurrency,
        |i| {
            let id = format!("acctreq_bench_code_{pid}_{i}");
            let email = format!("code{pid}x{i}@bench.example");
            let reply = p
                .account_request(&flows::account_request(&id, &email))
                .map_err(|e| e.to_string())?;
            match reply.json()["oauth"]["code"].as_str() {
                Some(code) => Ok(code.to_string()),
                None => Err(format!(
                    "account request: {}: {}",
                    reply.status,
                    reply.text()
                )),
            }
        },
    )?;
    settle();
    Ok(drain(settings, p, &pool, |p, code| {
        expect_ok(p.exchange_code(code, None, true))
    }))
}

/// Ours against the peer's mean of before and after for one grant, with the target (ours at
/// least 1.0x the peer's throughput), as a line to print.
pub(crate) fn compare(grant: &str, ours: &Stats, before: &Stats, after: &Stats) -> String {
    let mean = |f: &dyn Fn(&Stats) -> f64| (f(before) + f(after)) / 2.0;
    let peer_rps = mean(&|s| s.rps());
    let ratio = ours.rps() / peer_rps;
    format!(
        "{grant} vs the peer (bench/peer-oauth, mean of before and after): {ratio:.2}x the \
         throughput ({:.0} vs {peer_rps:.0} req/s; target >= 1.0: {}); p50 {:.1} vs {:.1} ms, \
         p99 {:.1} vs {:.1} ms; measured {:.1} s (peer {:.1} s, {:.1} s); peer drift {:.2}x",
        ours.rps(),
        if ratio >= 1.0 { "met" } else { "NOT MET" },
        ours.percentile(0.50),
        mean(&|s| s.percentile(0.50)),
        ours.percentile(0.99),
        mean(&|s| s.percentile(0.99)),
        ours.elapsed.as_secs_f64(),
        before.elapsed.as_secs_f64(),
        after.elapsed.as_secs_f64(),
        after.rps() / before.rps(),
    )
}
