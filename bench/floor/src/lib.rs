//! The floor for account creation: the least a provider built on this stack does for one new
//! account, to measure ours against (throughput) and to see what the design card's crates weigh
//! on their own (wasm size). It does what the protocol and our issues require of every
//! implementation, and nothing else:
//!
//! - the worker verifies the orchestrator's signature (`Stripe-Signature: t=<unix>,v1=<hex>`,
//!   HMAC-SHA256 over `<t>.<body>`, 300 s tolerance, with the project's own
//!   `domain::signature`), parses the JSON body, writes one JSON log
//!   line and asks the email's directory object;
//! - one directory object per email (SQLite, one table) finds or creates the account atomically;
//! - one account object per account (SQLite, one table) stores the new account's state and
//!   records it in D1 before answering.
//!
//! And the floor for a Stripe webhook (`POST /webhook`): the worker verifies the signature
//! (the same scheme), parses the event, logs one line and asks the account object named in the
//! event's metadata, which applies it exactly once: it looks the event id up, then records it
//! and changes the account's state in one transaction.
//!
//! And the floor for a resource read (`GET /provisioning/resources/{id}`, as the orchestrator
//! sends it: signed, with the account's access token as bearer): the worker verifies the
//! signature (over the empty body), checks the token's tag (`domain::tokens::verify_kind`, so a
//! made-up token reaches no object, as issue 18 asks), logs one line and asks the account
//! object the token names, which reads the resource's stored row in one query, only if the
//! token's hash is stored and unexpired, and answers its JSON; the worker passes that answer on.
//! `POST /seed/{account}` (signed, not measured) gives an account object one access token (its
//! hash; the benchmark mints it with the floor's tag key) and one resource to read.
//!
//! Left out on purpose, as the real worker has them: the audit outbox and its alarm (for
//! webhooks, any audit record at all), request idempotency records, rate limits, API version
//! checks, OAuth codes and error envelopes; for reads, the account's status, the token's grant
//! and scopes, and rendering the resource from the account's state. `POST /setup` creates the D1
//! table (the benchmark calls it once).

#[cfg(target_arch = "wasm32")]
mod floor {
    use domain::tokens::{self, TokenKind};
    use serde::{Deserialize, Serialize};
    use worker::wasm_bindgen::JsValue;
    use worker::{
        durable_object, DurableObject, Env, Method, Request, RequestInit, Response,
        ResponseBuilder, Result, SqlStorageValue, State,
    };

    /// The signing secret the benchmark's client uses (not a secret: the floor is local only).
    pub const KEY: &[u8] = b"floor-signing-key";
    /// The key that tags the floor's access tokens (`domain::tokens`); the benchmark mints them
    /// with it. Local only as well.
    const TOKEN_KEY: &str = "floor-token-key";

    #[derive(Deserialize)]
    struct AccountRequest {
        id: String,
        email: String,
    }

    #[derive(Serialize, Deserialize)]
    struct NewAccount {
        account_id: String,
        email: String,
        request_id: String,
    }

    #[derive(Deserialize)]
    struct Event {
        id: String,
        data: EventData,
    }

    #[derive(Deserialize)]
    struct EventData {
        object: EventObject,
    }

    #[derive(Deserialize)]
    struct EventObject {
        metadata: Metadata,
    }

    #[derive(Deserialize)]
    struct Metadata {
        account_id: String,
    }

    /// What the account object is asked.
    #[derive(Serialize, Deserialize)]
    enum Call {
        Create(NewAccount),
        Event {
            id: String,
        },
        Seed {
            id: String,
            resource: String,
            token_hash: String,
            expires_at: i64,
        },
        Read {
            id: String,
            token_hash: String,
            now: i64,
        },
    }

    #[derive(Serialize, Deserialize)]
    struct Applied {
        duplicate: bool,
    }

    #[derive(Serialize, Deserialize)]
    struct Created {
        account_id: String,
        created: bool,
    }

    /// The project's own check (`domain::signature`): strict header parse, HMAC-SHA256,
    /// constant-time comparison, 300 s tolerance.
    fn verify(header: Option<String>, body: &[u8]) -> bool {
        domain::signature::verify(header.as_deref(), body, &[KEY], now(), 300).is_ok()
    }

    fn now() -> i64 {
        (worker::Date::now().as_millis() / 1000) as i64
    }

    async fn call<T: Serialize>(stub: worker::Stub, body: &T) -> Result<Response> {
        let body = serde_json::to_string(body)?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post)
            .with_body(Some(JsValue::from_str(&body)));
        stub.fetch_with_request(Request::new_with_init("https://internal/", &init)?)
            .await
    }

    #[worker::event(fetch)]
    async fn fetch(mut req: Request, env: Env, _ctx: worker::Context) -> Result<Response> {
        let path = req.path();
        if path == "/setup" {
            env.d1("AUDIT_DB")?
                .exec("CREATE TABLE IF NOT EXISTS accounts (id TEXT PRIMARY KEY, email TEXT NOT NULL, created_at INTEGER NOT NULL)")
                .await?;
            return Response::ok("ready");
        }
        let body = req.bytes().await?;
        if !verify(req.headers().get("Stripe-Signature")?, &body) {
            return Response::error("bad signature", 401);
        }
        worker::console_log!(
            "{}",
            serde_json::json!({"level": "info", "msg": "request", "path": path, "status": 200})
        );
        // The floor of a signed health check (the cold-start benchmark's first request).
        if path == "/provisioning/health" {
            return Response::from_json(&serde_json::json!({"status": "ok"}));
        }
        if let Some(id) = path.strip_prefix("/provisioning/resources/") {
            if req.method() == Method::Get {
                return read(&req, &env, id).await;
            }
        }
        if let Some(account) = path.strip_prefix("/seed/") {
            return seed(&env, account, body).await;
        }
        if path == "/webhook" {
            let event: Event = match serde_json::from_slice(&body) {
                Ok(e) => e,
                Err(_) => return Response::error("bad body", 400),
            };
            let stub = env
                .durable_object("ACCOUNTS")?
                .get_by_name(&event.data.object.metadata.account_id)?;
            let mut reply = call(stub, &Call::Event { id: event.id }).await?;
            let applied: Applied = reply.json().await?;
            return Response::from_json(&applied);
        }
        let request: AccountRequest = match serde_json::from_slice(&body) {
            Ok(r) => r,
            Err(_) => return Response::error("bad body", 400),
        };
        let stub = env
            .durable_object("DIRECTORY")?
            .get_by_name(&format!("email:{}", request.email))?;
        let mut reply = call(stub, &(request.id, request.email)).await?;
        let created: Created = reply.json().await?;
        Response::from_json(&created)
    }

    /// A resource read: the bearer's tag names the account; its object answers the stored
    /// resource if the token's hash is stored there, and that answer is passed on as it is.
    async fn read(req: &Request, env: &Env, id: &str) -> Result<Response> {
        let header = req.headers().get("Authorization")?;
        let token = header
            .as_deref()
            .and_then(|h| h.strip_prefix("Bearer "))
            .unwrap_or("");
        let keys = tokens::MacKeys::new(TOKEN_KEY, false);
        let Some(account) = tokens::verify_kind(token, TokenKind::Access, &keys) else {
            return Response::error("invalid token", 401);
        };
        let stub = env.durable_object("ACCOUNTS")?.get_by_name(account)?;
        let read = Call::Read {
            id: id.to_string(),
            token_hash: tokens::hash(token),
            now: now(),
        };
        call(stub, &read).await
    }

    /// Seeds account `account` (`POST /seed/{account}`): the body, a `Call::Seed` the benchmark
    /// made (it mints the token with `TOKEN_KEY`), goes to the account's object as it is.
    async fn seed(env: &Env, account: &str, body: Vec<u8>) -> Result<Response> {
        let stub = env.durable_object("ACCOUNTS")?.get_by_name(account)?;
        let mut init = RequestInit::new();
        init.with_method(Method::Post).with_body(Some(
            worker::js_sys::Uint8Array::from(body.as_slice()).into(),
        ));
        stub.fetch_with_request(Request::new_with_init("https://internal/", &init)?)
            .await
    }

    fn exec(
        state: &State,
        query: &str,
        bindings: Vec<SqlStorageValue>,
    ) -> Result<worker::SqlCursor> {
        state.storage().sql().exec(query, Some(bindings))
    }

    #[durable_object]
    pub struct Directory {
        state: State,
        env: Env,
    }

    impl DurableObject for Directory {
        fn new(state: State, env: Env) -> Self {
            let _ = exec(&state, "CREATE TABLE IF NOT EXISTS owner (email TEXT PRIMARY KEY, account_id TEXT NOT NULL, request_id TEXT NOT NULL)", vec![]);
            Directory { state, env }
        }

        async fn fetch(&self, mut req: Request) -> Result<Response> {
            let (request_id, email): (String, String) = req.json().await?;
            #[derive(Deserialize)]
            struct Owner {
                account_id: String,
            }
            let found: Vec<Owner> = exec(
                &self.state,
                "SELECT account_id FROM owner WHERE email = ?",
                vec![email.as_str().into()],
            )?
            .to_array()?;
            if let Some(owner) = found.into_iter().next() {
                return Response::from_json(&Created {
                    account_id: owner.account_id,
                    created: false,
                });
            }
            let mut bytes = [0u8; 10];
            getrandom::fill(&mut bytes).map_err(|e| worker::Error::RustError(e.to_string()))?;
            let account_id: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            let account_id = format!("acct_{account_id}");
            exec(
                &self.state,
                "INSERT INTO owner (email, account_id, request_id) VALUES (?, ?, ?)",
                vec![
                    email.as_str().into(),
                    account_id.as_str().into(),
                    request_id.as_str().into(),
                ],
            )?;
            let stub = self
                .env
                .durable_object("ACCOUNTS")?
                .get_by_name(&account_id)?;
            let new = NewAccount {
                account_id,
                email,
                request_id,
            };
            let mut reply = call(stub, &Call::Create(new)).await?;
            let created: Created = reply.json().await?;
            Response::from_json(&created)
        }
    }

    #[durable_object]
    pub struct Account {
        state: State,
        env: Env,
        /// The `events` table exists (created with the first event, as the real worker does).
        events_ready: std::cell::Cell<bool>,
    }

    impl DurableObject for Account {
        fn new(state: State, env: Env) -> Self {
            let _ = exec(
                &state,
                "CREATE TABLE IF NOT EXISTS state (id INTEGER PRIMARY KEY, value TEXT NOT NULL)",
                vec![],
            );
            Account {
                state,
                env,
                events_ready: std::cell::Cell::new(false),
            }
        }

        async fn fetch(&self, mut req: Request) -> Result<Response> {
            match req.json().await? {
                Call::Create(new) => self.create(new).await,
                Call::Event { id } => self.event(id),
                Call::Seed {
                    id,
                    resource,
                    token_hash,
                    expires_at,
                } => self.seed(id, resource, token_hash, expires_at),
                Call::Read {
                    id,
                    token_hash,
                    now,
                } => self.read(id, token_hash, now),
            }
        }
    }

    impl Account {
        async fn create(&self, new: NewAccount) -> Result<Response> {
            exec(
                &self.state,
                "INSERT INTO state (id, value) VALUES (1, ?)",
                vec![serde_json::to_string(&new)?.into()],
            )?;
            let created_at = (worker::Date::now().as_millis() / 1000) as f64;
            self.env
                .d1("AUDIT_DB")?
                .prepare("INSERT INTO accounts (id, email, created_at) VALUES (?, ?, ?)")
                .bind(&[
                    JsValue::from_str(&new.account_id),
                    JsValue::from_str(&new.email),
                    JsValue::from_f64(created_at),
                ])?
                .run()
                .await?;
            Response::from_json(&Created {
                account_id: new.account_id,
                created: true,
            })
        }

        /// Stores one access token (its hash) and one resource (its JSON as a read answers it).
        fn seed(
            &self,
            id: String,
            resource: String,
            token_hash: String,
            expires_at: i64,
        ) -> Result<Response> {
            for table in [
                "CREATE TABLE IF NOT EXISTS tokens (hash TEXT PRIMARY KEY, expires_at INTEGER NOT NULL)",
                "CREATE TABLE IF NOT EXISTS resources (id TEXT PRIMARY KEY, value TEXT NOT NULL)",
            ] {
                exec(&self.state, table, vec![])?;
            }
            exec(
                &self.state,
                "INSERT INTO tokens (hash, expires_at) VALUES (?, ?)",
                vec![token_hash.into(), expires_at.into()],
            )?;
            exec(
                &self.state,
                "INSERT INTO resources (id, value) VALUES (?, ?)",
                vec![id.into(), resource.into()],
            )?;
            Response::ok("seeded")
        }

        /// The stored resource `id`, read from storage, if `token_hash` is a stored, unexpired
        /// access token of this account: one query.
        fn read(&self, id: String, token_hash: String, now: i64) -> Result<Response> {
            #[derive(Deserialize)]
            struct Row {
                value: String,
            }
            let rows: Vec<Row> = exec(
                &self.state,
                "SELECT value FROM resources WHERE id = ? AND EXISTS (SELECT 1 FROM tokens WHERE hash = ? AND expires_at > ?)",
                vec![id.into(), token_hash.into(), now.into()],
            )?
            .to_array()?;
            match rows.into_iter().next() {
                Some(row) => ResponseBuilder::new()
                    .with_header("content-type", "application/json")
                    .map(|r| r.fixed(row.value.into_bytes())),
                None => Response::error("resource not found", 404),
            }
        }

        /// Applies event `id` once: the lookup, then the record and the state change, written
        /// together (the object's writes before its next await commit as one).
        fn event(&self, id: String) -> Result<Response> {
            if !self.events_ready.get() {
                exec(
                    &self.state,
                    "CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)",
                    vec![],
                )?;
                self.events_ready.set(true);
            }
            #[derive(Deserialize)]
            struct Seen {}
            let seen: Vec<Seen> = exec(
                &self.state,
                "SELECT 1 AS applied FROM events WHERE id = ?",
                vec![id.as_str().into()],
            )?
            .to_array()?;
            if !seen.is_empty() {
                return Response::from_json(&Applied { duplicate: true });
            }
            let now = (worker::Date::now().as_millis() / 1000) as i64;
            exec(
                &self.state,
                "INSERT INTO events (id, applied_at) VALUES (?, ?)",
                vec![id.as_str().into(), now.into()],
            )?;
            exec(
                &self.state,
                "UPDATE state SET value = json_set(value, '$.events', coalesce(json_extract(value, '$.events'), 0) + 1) WHERE id = 1",
                vec![],
            )?;
            Response::from_json(&Applied { duplicate: false })
        }
    }
}
