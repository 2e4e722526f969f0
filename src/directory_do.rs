//! The directory Durable Object: one per normalised email (`email:<email>`), so "find or
//! create the account" is atomic. It also remembers every account request id it answered
//! (idempotency). The same class, under `claims:<hh>` (`account_request::claim_object`: 256
//! objects by the first byte of SHA-256(id)), keeps the claims of account request ids: each id's
//! first body's fingerprint, so an id is idempotent across emails.
//!
//! Storage (SQLite, see docs/STORAGE.md):
//! - `owner(email, account_id, created_at)`: at most one row: the account of this email.
//! - `requests(id, fingerprint, account_id, outcome, issued_at)`: answered account requests
//!   that have an id (a request without one is never replayed, so it is not kept).
//! - `claim(id, fingerprint, email, claimed_at)` (claim objects only): each id's first body.
//!
//! Invariants:
//! - Requests are handled one at a time (`blockConcurrencyWhile` around the whole step,
//!   including the call to the account object), so two concurrent requests for one email never
//!   create two accounts.
//! - No secret is stored: codes and consent links are derived from `DERIVATION_KEY`, the
//!   account id, the request id and its time (and tagged under `TOKEN_MAC_KEY` like every
//!   token), so a replay returns the same ones.
//! - The rows of a new account are written before the account object is called; if that call
//!   fails for sure they are removed, and if its outcome is unknown a replay completes it (the
//!   account object's create is idempotent).

use domain::account::{AccountStatus, CodeStatus, NewAccount, NewCode, OpenConsent};
use domain::account_request::{
    self, AccountRequest, AccountRequestError, Claim, OauthOutcome, Outcome, RequiresAuth,
};
use domain::audit::{Actor, ActorKind};
use domain::errors::Failure;
use domain::form;
use domain::object_sql::{
    CLAIM_SCHEMA, DELETE_OWNER_OF, DELETE_REQUESTS_OF, EMAIL_SCHEMA, INSERT_CLAIM, INSERT_OWNER,
    INSERT_REQUEST, SELECT_CLAIM, SELECT_OWNER, SELECT_REQUEST,
};
use domain::tokens::{self, TokenKind};
use worker::{
    durable_object, DurableObject, Env, Request, Response, Result, SqlStorageValue, State,
};

use crate::http::{now_ms, random};
use crate::rpc::account::{self, AccountCall, CheckCode};
use crate::rpc::directory::{AccountRequestCall, ClaimRequest, DirectoryOp};
use crate::rpc::op::{CallError, Encoded, Op};
use crate::rpc::transport::respond;
use crate::{config, meter, storage};

#[durable_object]
pub struct Directory {
    state: State,
    env: Env,
    /// Whether this instance made sure its `claim` table exists (claim objects only).
    claim_table: std::cell::Cell<bool>,
    /// Whether this instance made sure its `owner` and `requests` tables exist (email objects).
    email_tables: std::cell::Cell<bool>,
}

type Answer = std::result::Result<Outcome, AccountRequestError>;

/// The object's answer to operation `O`: a refusal goes rendered (`AccountRequestError::failure`),
/// as the worker only sends it on.
fn answer<O: Op<Error = Failure>>(
    result: std::result::Result<O::Answer, AccountRequestError>,
) -> Result<Response> {
    respond(Encoded::answer::<O>(result.map_err(|e| e.failure())))
}

impl DurableObject for Directory {
    fn new(state: State, env: Env) -> Self {
        Directory {
            state,
            env,
            claim_table: std::cell::Cell::new(false),
            email_tables: std::cell::Cell::new(false),
        }
    }

    async fn fetch(&self, req: Request) -> Result<Response> {
        let started = meter::object_request(&self.env);
        let answer = self.serve(req).await;
        meter::object_done(&self.env, started);
        answer
    }
}

impl Directory {
    async fn serve(&self, mut req: Request) -> Result<Response> {
        let op: DirectoryOp = match req.json().await {
            Ok(op) => op,
            Err(e) => return Response::error(format!("bad internal call: {e}"), 400),
        };
        let AccountRequestCall {
            request,
            public_base,
            request_id,
        } = match op {
            DirectoryOp::AccountRequest(call) => call,
            DirectoryOp::ClaimRequest(c) => {
                let claimed = self.claim(&c.id, &c.fingerprint, &c.email);
                return answer::<ClaimRequest>(claimed);
            }
        };
        if !self.email_tables() {
            return answer::<AccountRequestCall>(Err(AccountRequestError::Unavailable));
        }
        // A request without an id goes by a fresh name (its code, consent and records).
        let key = match &request.id {
            Some(id) => id.clone(),
            None => match random::<16>() {
                Ok(bytes) => account_request::unnamed_key(&bytes),
                Err(_) => {
                    return answer::<AccountRequestCall>(Err(AccountRequestError::Internal));
                }
            },
        };
        let step = Step {
            env: self.env.clone(),
            storage: self.state.storage(),
            key,
            request,
            public_base,
            request_id,
            now: (now_ms() / 1000) as i64,
        };
        // One request at a time per email, including the awaited call to the account object.
        let outcome: Answer = match self
            .state
            .block_concurrency_while(async move { Ok(step.run().await) })
            .await
        {
            Ok(answer) => answer,
            Err(_) => Err(AccountRequestError::Unavailable),
        };
        answer::<AccountRequestCall>(outcome)
    }

    /// Makes sure the email object's tables exist (once per instance).
    fn email_tables(&self) -> bool {
        storage::create_once(&self.state.storage(), &self.email_tables, EMAIL_SCHEMA)
            .map_err(|e| worker::console_error!("directory schema: {e}"))
            .is_ok()
    }

    /// Claims an account request id for its first body. Synchronous storage only, so two
    /// requests with one id are decided one after the other: exactly one claims it.
    fn claim(
        &self,
        id: &str,
        fingerprint: &str,
        email: &str,
    ) -> std::result::Result<(), AccountRequestError> {
        #[derive(serde::Deserialize)]
        struct ClaimRow {
            fingerprint: String,
        }
        let sql = self.state.storage().sql();
        let unavailable = |e: worker::Error| {
            worker::console_error!("request claim: {e}");
            AccountRequestError::Unavailable
        };
        storage::create_once(&self.state.storage(), &self.claim_table, &[CLAIM_SCHEMA])
            .map_err(unavailable)?;
        let recorded: Vec<ClaimRow> = sql
            .exec(SELECT_CLAIM, vec![SqlStorageValue::from(id)])
            .and_then(|c| {
                let rows = c.to_array();
                meter::sql(&c);
                rows
            })
            .map_err(unavailable)?;
        let recorded = recorded.first().map(|r| r.fingerprint.as_str());
        match account_request::claim(recorded, fingerprint) {
            Claim::Same => Ok(()),
            Claim::Conflict => Err(AccountRequestError::IdempotencyConflict),
            Claim::New => {
                let now = (now_ms() / 1000) as i64;
                let inserted = sql
                    .exec(
                        INSERT_CLAIM,
                        vec![id.into(), fingerprint.into(), email.into(), now.into()],
                    )
                    .map_err(unavailable)?;
                meter::sql(&inserted);
                Ok(())
            }
        }
    }
}

/// One account request being answered; owns what it needs ('static future).
struct Step {
    env: Env,
    storage: worker::Storage,
    /// The request's id, or [`account_request::unnamed_key`] for a request without one.
    key: String,
    request: AccountRequest,
    public_base: String,
    request_id: String,
    now: i64,
}

#[derive(serde::Deserialize)]
struct RequestRow {
    fingerprint: String,
    account_id: String,
    outcome: String,
    issued_at: i64,
}

impl Step {
    fn rows<T: serde::de::DeserializeOwned>(
        &self,
        query: &str,
        bindings: Vec<SqlStorageValue>,
    ) -> Vec<T> {
        self.storage
            .sql()
            .exec(query, bindings)
            .and_then(|c| {
                let rows = c.to_array();
                meter::sql(&c);
                rows
            })
            .unwrap_or_default()
    }

    fn key(&self) -> std::result::Result<String, AccountRequestError> {
        config::code_key(&self.env).ok_or_else(|| {
            worker::console_error!("DERIVATION_KEY is not set");
            AccountRequestError::Internal
        })
    }

    fn mac_key(&self) -> std::result::Result<Vec<u8>, AccountRequestError> {
        config::token_mac_key(&self.env).ok_or(AccountRequestError::Internal)
    }

    fn call<O>(&self, op: O) -> AccountCall<O> {
        AccountCall {
            actor: Actor::new(
                ActorKind::Orchestrator,
                Some(&self.request.orchestrator.account),
            ),
            request_id: Some(self.request_id.clone()),
            op,
        }
    }

    fn context(&self, issued_at: i64) -> String {
        format!("{}|{issued_at}", self.key)
    }

    async fn run(self) -> Answer {
        let r = &self.request;
        let existing: Vec<RequestRow> = match &r.id {
            Some(id) => self.rows(SELECT_REQUEST, vec![SqlStorageValue::from(id.as_str())]),
            None => Vec::new(),
        };
        if let Some(row) = existing.into_iter().next() {
            if row.fingerprint != r.fingerprint {
                return Err(AccountRequestError::IdempotencyConflict);
            }
            return match row.outcome.as_str() {
                "oauth" => {
                    self.replay_new_account(&row.account_id, row.issued_at)
                        .await
                }
                _ => {
                    self.requires_auth(&row.account_id, row.issued_at, false)
                        .await
                }
            };
        }
        #[derive(serde::Deserialize)]
        struct OwnerRow {
            account_id: String,
        }
        let owner: Vec<OwnerRow> = self.rows(SELECT_OWNER, vec![]);
        match owner.into_iter().next() {
            Some(o) => self.requires_auth(&o.account_id, self.now, true).await,
            None => self.create_account().await,
        }
    }

    fn new_account(
        &self,
        account_id: &str,
        issued_at: i64,
    ) -> std::result::Result<(NewAccount, String), AccountRequestError> {
        let r = &self.request;
        let grant_id = format!("grant_{}", &tokens::hash(&self.context(issued_at))[..16]);
        let code = tokens::derive(
            TokenKind::Code,
            account_id,
            &self.mac_key()?,
            self.key()?.as_bytes(),
            &self.context(issued_at),
        );
        let new = NewAccount {
            id: account_id.to_string(),
            email: r.email.clone(),
            name: r.name.clone(),
            orchestrator: r.orchestrator.clone(),
            tos_version: config::tos_version(&self.env),
            terms_accepted_at: r.terms_accepted_at,
            scopes: r.scopes.clone(),
            request_id: self.key.clone(),
            grant_id,
            code: NewCode {
                hash: code.hash,
                code_challenge: r.code_challenge.clone(),
            },
            spending_cap: config::spending_cap(&self.env),
            // The cap counts in the catalog's currency (README: spending cap).
            currency: crate::discovery::currency(&self.env).map(str::to_string),
        };
        Ok((new, code.token))
    }

    async fn create_account(&self) -> Answer {
        let r = &self.request;
        let bytes = random::<10>().map_err(|_| AccountRequestError::Internal)?;
        let account_id = tokens::account_id(&bytes);
        let (new, code) = self.new_account(&account_id, self.now)?;
        let mut rows = vec![(
            INSERT_OWNER,
            vec![
                r.email.as_str().into(),
                account_id.as_str().into(),
                self.now.into(),
            ],
        )];
        if let Some(id) = &r.id {
            rows.push((
                INSERT_REQUEST,
                vec![
                    id.as_str().into(),
                    r.fingerprint.as_str().into(),
                    account_id.as_str().into(),
                    "oauth".into(),
                    self.now.into(),
                ],
            ));
        }
        storage::atomically(&self.storage, rows).map_err(|_| AccountRequestError::Unavailable)?;
        match account::call(&self.env, &account_id, self.call(new)).await {
            Ok(()) => Ok(Outcome::Oauth {
                oauth: OauthOutcome { code },
            }),
            Err(CallError::Refused(_)) => {
                // The account object refused for sure: forget the rows, nothing exists.
                self.forget(&account_id);
                Err(AccountRequestError::Internal)
            }
            // Unknown outcome: keep the rows; a replay of this request completes it.
            Err(CallError::Transport(_)) => Err(AccountRequestError::Unavailable),
        }
    }

    fn forget(&self, account_id: &str) {
        let _ = storage::atomically(
            &self.storage,
            vec![
                (DELETE_OWNER_OF, vec![account_id.into()]),
                (DELETE_REQUESTS_OF, vec![account_id.into()]),
            ],
        );
    }

    async fn replay_new_account(&self, account_id: &str, issued_at: i64) -> Answer {
        // Re-run the (idempotent) create in case the first attempt's outcome was unknown.
        let (new, code) = self.new_account(account_id, issued_at)?;
        let code_hash = new.code.hash.clone();
        account::call(&self.env, account_id, self.call(new))
            .await
            .map_err(|_| AccountRequestError::Unavailable)?;
        let status = account::call(&self.env, account_id, self.call(CheckCode { code_hash })).await;
        match status {
            Ok(CodeStatus::Unused) => Ok(Outcome::Oauth {
                oauth: OauthOutcome { code },
            }),
            Ok(CodeStatus::Used) => Err(AccountRequestError::AlreadyRedeemed),
            Ok(CodeStatus::Expired) => Err(AccountRequestError::Expired),
            Ok(CodeStatus::Unknown) | Err(CallError::Refused(_)) => {
                Err(AccountRequestError::Internal)
            }
            Err(CallError::Transport(_)) => Err(AccountRequestError::Unavailable),
        }
    }

    async fn requires_auth(&self, account_id: &str, issued_at: i64, first_time: bool) -> Answer {
        let r = &self.request;
        let consent = tokens::derive(
            TokenKind::Consent,
            account_id,
            &self.mac_key()?,
            self.key()?.as_bytes(),
            &self.context(issued_at),
        );
        let nonce =
            domain::crypto::base32(&random::<16>().map_err(|_| AccountRequestError::Internal)?);
        let open = OpenConsent {
            hash: consent.hash,
            request_id: self.key.clone(),
            orchestrator: r.orchestrator.clone(),
            scopes: r.scopes.clone(),
            code_challenge: r.code_challenge.clone(),
            request_expires_at: r.expires_at,
            nonce,
        };
        match account::call(&self.env, account_id, self.call(open)).await {
            Ok(_expires_at) => {}
            Err(CallError::Refused(domain::account::AccountError::Inactive { status })) => {
                return Err(AccountRequestError::AccountUnavailable {
                    status: match status {
                        AccountStatus::Suspended => "suspended".into(),
                        _ => "closed".into(),
                    },
                })
            }
            Err(CallError::Refused(domain::account::AccountError::NotFound)) if first_time => {
                // The directory points at an account whose creation never completed and was
                // never replayed: start over as a new account.
                self.forget(account_id);
                return self.create_account().await;
            }
            Err(CallError::Refused(_)) => return Err(AccountRequestError::Internal),
            Err(CallError::Transport(_)) => return Err(AccountRequestError::Unavailable),
        }
        if let (true, Some(id)) = (first_time, &r.id) {
            storage::atomically(
                &self.storage,
                vec![(
                    INSERT_REQUEST,
                    vec![
                        id.as_str().into(),
                        r.fingerprint.as_str().into(),
                        account_id.into(),
                        "requires_auth".into(),
                        issued_at.into(),
                    ],
                )],
            )
            .map_err(|_| AccountRequestError::Unavailable)?;
        }
        let url = format!(
            "{}/oauth/authorize?{}",
            self.public_base,
            form::encode(&[("consent", &consent.token)])
        );
        Ok(Outcome::RequiresAuth {
            requires_auth: RequiresAuth { url },
        })
    }
}
