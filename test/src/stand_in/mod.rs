//! A local HTTP stand-in for the three outside services the worker calls: a subset of
//! Stripe's API, a domain registrar and the operator's own backend. Tests and local
//! development point the worker at it instead of the real services.
//!
//! It speaks the wire format of the real services and **checks what it receives**, so the
//! worker's clients are tested honestly rather than against a mock that accepts anything.
//!
//! # What it checks
//!
//! Stripe (`/v1/*`, endpoints listed in `stripe/mod.rs`):
//! - `Authorization: Bearer <api key>` on every call (401 otherwise);
//! - POST bodies are `application/x-www-form-urlencoded` with Stripe's nested keys
//!   (`a[b]=1`, `items[0][price]=…`), decoded strictly: bad percent-escapes, non-UTF-8,
//!   malformed brackets, repeated or conflicting keys are 400 errors;
//! - unknown parameters are refused (`parameter_unknown`), as Stripe does; required parameters
//!   and their types are checked (`parameter_missing`, `parameter_invalid_integer`, …);
//! - every POST and DELETE carries an `Idempotency-Key` (stricter than Stripe, on purpose: the
//!   worker must always send one), and keys behave like Stripe's: same key and same request
//!   replays the stored response byte for byte with `Idempotent-Replayed: true`; same key with
//!   other parameters is an `idempotency_error`. Parameter-validation failures are not stored,
//!   every other result (including 402 declines) is;
//! - the business rules of a shared payment granted token (existence, expiry, revocation,
//!   currency, spending limit, scripted declines), customers, payment methods attached to
//!   customers and subscriptions.
//!
//! Registrar (`/registrar/v1/*`) and operator backend (`/operator/v1/*`): see `registrar.rs` and
//! `operator.rs`: bearer key or `Provider-Signature` HMAC, required idempotency keys, strict
//! JSON bodies.
//!
//! Faults ([`Fault`]) can be queued for any path prefix, answered instead of the operation or
//! after it (a response lost in transit; the retry with the same key then replays the success).
//!
//! Control routes under `/_stand_in/` (JSON, no auth, never logged) mirror the Rust API for the
//! `stand-in` binary and for tests in another process: `POST faults`
//! (`{"path_prefix","count"?,"status"?,"after"?,"slow_ms"?,"param_pointer"?,"param_value"?,
//! "key_prefix"?}`), `POST granted_tokens`
//! (`{"currency","max_amount","expires_at","decline_code"?}`), `POST granted_tokens/{id}/revoke`,
//! `POST operator` (`{"pending_calls"}`), `GET state`, `POST reset`, and the webhook routes
//! below.
//!
//! # Webhooks
//!
//! Every operation that changes something creates a Stripe event, once (an idempotent replay
//! creates none): `payment_intent.succeeded`, `payment_intent.payment_failed` (any 402
//! decline), `customer.subscription.created`, `customer.subscription.deleted`,
//! `charge.refunded` (the charge: `amount`, `amount_refunded`, `payment_intent`, `refunded`
//! once fully refunded, the PaymentIntent's `metadata`) and
//! `shared_payment.granted_token.deactivated` (a revocation). Events have Stripe's shape:
//! `{"id":"evt_…","object":"event","api_version":"2026-04-22.preview","created","livemode":false,
//! "pending_webhooks":1,"request":{"id":null,"idempotency_key"},"type","data":{"object"}}`, with
//! the object as the API returns it at that moment.
//!
//! Stripe-side life the stand-in does not simulate (renewals, failed renewals, disputes…) is
//! emitted on demand: [`StandIn::emit`] / `POST /_stand_in/events` (`{"type","object","created"?}`)
//! with objects from [`StandIn::invoice_object`] (`POST /_stand_in/invoices`
//! `{"subscription","paid"?,"amount"}`), [`StandIn::subscription_object`] and
//! [`StandIn::set_subscription_status`] (`POST /_stand_in/subscriptions/{id}/status`
//! `{"status"}`).
//!
//! With a [`Config::webhook_url`], each event is POSTed there from background threads (an API
//! request never waits): body the compact event JSON, `Stripe-Signature: t=<now>,v1=<hex
//! HMAC-SHA256(webhook_secret, "<t>." + body)>` computed afresh for every attempt,
//! `Content-Type: application/json; charset=utf-8`, `User-Agent: Stripe/1.0
//! (+https://stripe.com/docs/webhooks)`. A 2xx answer ends the delivery; anything else
//! (redirects included, which are not followed), a transport error or no answer within 10 s
//! is retried after 200 ms, doubling, capped at 5 s, for at most 8 attempts: Stripe's three
//! days, compressed. Events are delivered one at a time in creation order, except that an
//! event waiting for its retry does not hold back the next ones. Without a URL, events are
//! recorded but not delivered (setting a URL later does not deliver them, except held
//! ones: a release delivers to the URL of that moment).
//!
//! Tests control delivery ([`StandIn::hold_webhooks`], [`StandIn::release_webhooks`],
//! [`StandIn::wait_for_deliveries`]): held events wait; a release delivers each of them
//! `1 + duplicates` times (Stripe's at-least-once), in order or shuffled and concurrently from
//! up to 8 threads. Over HTTP: `POST /_stand_in/webhooks/config` (`{"url"?: string|null,
//! "hold"?: bool}`), `POST /_stand_in/webhooks/release` (`{"shuffle"?,"duplicates"?}`, at most
//! 100 duplicates), `GET /_stand_in/webhooks` (`{"url","hold","events","deliveries"}`). Every
//! attempt is logged in [`StandIn::deliveries`].
//!
//! # What it deliberately does not implement
//!
//! - Anything outside the listed endpoints (404 like Stripe's "Unrecognized request URL"),
//!   list endpoints, pagination, `expand` (accepted and ignored), the `/v1/events` API.
//! - Events Stripe also sends but the worker does not need (`payment_intent.created`,
//!   `charge.succeeded`, `customer.created`, `refund.created`, `customer.subscription.updated`,
//!   …), events for a token that expires or is used up, and anything about invoices unless
//!   emitted on demand. Event `request.id` is always null. Webhook endpoints, their event
//!   filters and several endpoints per account do not exist: one URL gets every event, and
//!   the secret cannot be rolled (no second `v1` signature).
//! - Stripe's delivery timing: retries are seconds apart instead of hours, and a delivery
//!   that never succeeds is simply abandoned (no endpoint disabling, no e-mail).
//! - Prices and products: any non-empty `items[i][price]` is accepted.
//! - Real money rules: minimum charge amounts, currency exponents, 3-D Secure, manual capture,
//!   unconfirmed PaymentIntents (`confirm=true` is required). A refund does not give the
//!   granted token its allowance back.
//! - Billing cycles: `current_period_end` is the trial end or 30 days after creation; no
//!   invoices and no renewals (tests emit those events themselves).
//! - Concurrency conflicts on one idempotency key: requests are applied one at a time under
//!   a single lock, so Stripe's 409 "request in progress" never happens.
//! - Stripe-Version handling: the header is neither required nor checked.
//! - Slow-client protection: 8 worker threads; a client that never sends the body it announced
//!   (over 1 KiB) holds one of them until it disconnects.
//!
//! # Layout
//!
//! `server.rs` ([`StandIn`], the accept loop, dispatch) → `control.rs` (`/_stand_in/*`),
//! `stripe/` (one file per object family), `registrar.rs`, `operator.rs` → `idempotency.rs`
//! (keys and injected faults around every operation) → `state.rs` (everything remembered,
//! one lock) → leaves: `config.rs`, `fault.rs`, `http.rs`, `clock.rs`, `form.rs`,
//! `webhooks.rs` (delivery; never takes the state lock) and `stripe/token.rs`. Imports only go
//! down that list; this file only declares modules and re-exports the public API.

mod clock;
mod config;
mod control;
mod fault;
mod form;
mod http;
mod idempotency;
mod operator;
#[cfg(test)]
mod operator_tests;
mod registrar;
#[cfg(test)]
mod registrar_tests;
mod server;
mod state;
mod stripe;
#[cfg(test)]
mod stripe_tests;
#[cfg(test)]
mod tests;
mod webhooks;
#[cfg(test)]
mod webhooks_tests;

pub use config::Config;
pub use fault::Fault;
pub use server::StandIn;
