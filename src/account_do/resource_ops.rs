//! The account object's resource calls (`ResourceOp`): authenticate the orchestrator's access
//! token, take from the account's budget, then create, update, rotate, remove or confirm a
//! resource, driving its job as far as the request can, and render it.

use std::collections::BTreeMap;

use domain::account::{self, Account as AccountState, AccountError, Ctx};
use domain::audit::{Actor, ActorKind};
use domain::catalog::{Behaviour, Catalog};
use domain::dashboard;
use domain::resources::{self, Detail, NewIds, Preparation, ResourceError, ResourceStatus};
use domain::tokens::TokenKind;
use serde_json::{json, Value};

use crate::account_do::{mint, Account};
use crate::http::{new_id, random};
use crate::rpc::account::ResourceOp;
use crate::{config, external};

impl Account {
    /// A new random API token for the given resource generation, sealed for storage. Without
    /// a usable `TOKEN_ENCRYPTION_KEYS` nothing is minted.
    fn new_api_token(
        &self,
        account_id: &str,
        resource_id: &str,
        generation: u32,
    ) -> std::result::Result<resources::NewApiToken, ResourceError> {
        let keys = config::sealing_keys(&self.env).ok_or(ResourceError::SecretsUnavailable)?;
        let mac_key = config::token_mac_key(&self.env).ok_or(ResourceError::SecretsUnavailable)?;
        let bytes = random::<20>().map_err(|_| ResourceError::SecretsUnavailable)?;
        let nonce = random::<12>().map_err(|_| ResourceError::SecretsUnavailable)?;
        Ok(resources::new_api_token(
            &keys,
            &mac_key,
            account_id,
            resource_id,
            generation,
            &bytes,
            &nonce,
        ))
    }

    fn render(&self, id: &str) -> std::result::Result<Value, ResourceError> {
        let a = self.load().ok_or(ResourceError::NotFound)?;
        let r = resources::find_served(&a, id)?;
        let mut secrets = BTreeMap::new();
        if matches!(r.detail, Detail::ApiToken { .. }) && r.status == ResourceStatus::Complete {
            let keys = config::sealing_keys(&self.env);
            let derivation_key = config::code_key(&self.env);
            let value = resources::api_token_value(
                r,
                &a.id,
                keys.as_ref(),
                derivation_key.as_deref().map(str::as_bytes),
            )
            .map_err(|e| {
                worker::console_error!(
                    "{}",
                    json!({"level": "error", "msg": "api_token", "resource_id": id, "detail": e.to_string()})
                );
                ResourceError::SecretsUnavailable
            })?;
            if let Some(value) = value {
                secrets.insert("API_TOKEN".to_string(), value);
            }
        }
        Ok(resources::render(r, &a.id, &secrets))
    }

    pub(super) async fn resource(
        &self,
        access_hash: &str,
        public_base: &str,
        op: ResourceOp,
        ctx: &Ctx,
    ) -> std::result::Result<Value, ResourceError> {
        let current = self.load().ok_or(ResourceError::Account {
            error: AccountError::InvalidToken,
        })?;
        let access = account::authenticate(&current, access_hash, ctx.now)?;
        // Signed by the orchestrator (checked by the worker) with a valid access token: only
        // now does the call take from the account's budget.
        self.charge_owner()?;
        // Audit records name the orchestrator account the token was granted to.
        let ctx = &Ctx {
            actor: Actor::new(ActorKind::Orchestrator, Some(&access.orchestrator_account)),
            ..ctx.clone()
        };
        let catalog = self.catalog()?;
        let write = !matches!(op, ResourceOp::Get { .. });
        resources::require_scope(&access, write)?;
        match op {
            ResourceOp::Get { id } => self.render(&id),
            ResourceOp::Create { req } => {
                let id = match resources::prepare_create(&current, &req, catalog)? {
                    Preparation::Existing(id) => {
                        return self.repeated(&id, &req, catalog, ctx).await
                    }
                    Preparation::Search { label, registrar } => {
                        let price = catalog
                            .get(&req.service_id)
                            .and_then(|s| match &s.provider {
                                Behaviour::Domain { price: Some(p), .. } => {
                                    Some((p.amount, p.currency.clone()))
                                }
                                _ => None,
                            });
                        let candidates =
                            external::search(&self.env, &label, registrar, price).await?;
                        // The search awaited: check again before creating.
                        let fresh = self.load().ok_or(ResourceError::NotFound)?;
                        match resources::prepare_create(&fresh, &req, catalog)? {
                            Preparation::Existing(id) => {
                                return self.repeated(&id, &req, catalog, ctx).await
                            }
                            _ => {
                                self.create(&fresh, &req, catalog, Some(candidates), ctx)
                                    .await?
                            }
                        }
                    }
                    Preparation::Ready => self.create(&current, &req, catalog, None, ctx).await?,
                };
                self.submit(&id, &req, catalog, ctx).await?;
                self.drive_for_request(&id, ctx).await?;
                self.acknowledge(&id, ctx).await?;
                self.render(&id)
            }
            ResourceOp::Link { req } => match resources::prepare_link(&current, &req, catalog)? {
                Preparation::Existing(id) => self.repeated(&id, &req, catalog, ctx).await,
                _ => {
                    let resource_id = new_id("res");
                    let id = self
                        .commit(account::apply(&current, ctx, |d| {
                            resources::link(d, &req, catalog, &resource_id)
                        }))
                        .await?;
                    self.submit(&id, &req, catalog, ctx).await?;
                    self.drive_for_request(&id, ctx).await?;
                    self.acknowledge(&id, ctx).await?;
                    self.render(&id)
                }
            },
            ResourceOp::Update { id, req } => {
                let charge_id = new_id("chg");
                self.commit(account::apply(&current, ctx, |d| {
                    resources::update_service(d, &id, &req, catalog, &charge_id)
                }))
                .await?;
                self.drive_for_request(&id, ctx).await?;
                self.acknowledge(&id, ctx).await?;
                self.render(&id)
            }
            ResourceOp::Rotate { id } => {
                let r = resources::find(&current, &id)?;
                let next = match &r.detail {
                    Detail::ApiToken { generation, .. } => {
                        Some(self.new_api_token(&current.id, &id, generation + 1)?)
                    }
                    _ => None,
                };
                self.commit(account::apply(&current, ctx, |d| {
                    resources::rotate(d, &id, catalog, next)
                }))
                .await?;
                self.drive_for_request(&id, ctx).await?;
                self.acknowledge(&id, ctx).await?;
                self.render(&id)
            }
            ResourceOp::Remove { id } => {
                self.commit(account::apply(&current, ctx, |d| {
                    resources::remove(d, &id, catalog)
                }))
                .await?;
                self.drive_for_request(&id, ctx).await?;
                self.acknowledge(&id, ctx).await?;
                let a = self.load().ok_or(ResourceError::NotFound)?;
                match resources::find(&a, &id)?.status {
                    ResourceStatus::Removed => Ok(json!({"status": "removed", "id": id})),
                    _ => self.render(&id),
                }
            }
            ResourceOp::Confirm { id, req } => {
                let charge_id = new_id("chg");
                let confirmed = self
                    .commit(account::apply(&current, ctx, |d| {
                        resources::confirm_domain(d, &id, &req, &charge_id)
                    }))
                    .await;
                if let Err(ResourceError::QuoteExpired) = confirmed {
                    self.requote(&id, catalog, ctx).await?;
                    return Err(ResourceError::QuoteExpired);
                }
                confirmed?;
                self.drive_for_request(&id, ctx).await?;
                self.acknowledge(&id, ctx).await?;
                self.render(&id)
            }
            ResourceOp::DeepLink { req } => {
                let link = mint(&self.env, TokenKind::DeepLink, &current.id)
                    .map_err(ResourceError::from)?;
                let expires_at = self
                    .commit(account::apply(&current, ctx, |d| {
                        dashboard::create_link(d, link.hash, &req)
                    }))
                    .await?;
                let url = format!(
                    "{public_base}/dashboard?{}{}",
                    domain::form::encode(&[("link", &link.token)]),
                    dashboard::link_fragment(&req)
                );
                let mut answer = json!({"purpose": req.purpose, "url": url,
                      "expires_at": domain::time::format_rfc3339(expires_at)});
                // Echoed only when given (the protocol's answer has no path otherwise).
                if let Some(path) = &req.path {
                    answer["path"] = json!(path);
                }
                Ok(answer)
            }
        }
    }

    async fn create(
        &self,
        current: &AccountState,
        req: &resources::CreateRequest,
        catalog: &Catalog,
        candidates: Option<Vec<resources::Candidate>>,
        ctx: &Ctx,
    ) -> std::result::Result<String, ResourceError> {
        let resource_id = new_id("res");
        // Only API tokens mint a secret: a missing key refuses those and nothing else.
        let is_api_token = catalog
            .get(&req.service_id)
            .is_some_and(|s| matches!(s.provider, Behaviour::ApiToken { .. }));
        let token = if is_api_token {
            Some(self.new_api_token(&current.id, &resource_id, 1)?)
        } else {
            None
        };
        let ids = NewIds {
            resource_id,
            charge_id: new_id("chg"),
            token_hash: token.as_ref().map(|t| t.minted.hash.clone()),
            token_sealed: token.map(|t| t.sealed),
        };
        self.commit(account::apply(current, ctx, |d| {
            resources::create(d, req, catalog, ids, candidates)
        }))
        .await
    }

    /// A create or link that found the resource an earlier call made: answered as it is, unless
    /// it carries the `submitted_information` the resource asked for (protocol §8), which then
    /// acts as the confirmation (a quoted domain is bought, a backend is asked again).
    async fn repeated(
        &self,
        id: &str,
        req: &resources::CreateRequest,
        catalog: &Catalog,
        ctx: &Ctx,
    ) -> std::result::Result<Value, ResourceError> {
        if self.submit(id, req, catalog, ctx).await? {
            self.drive_for_request(id, ctx).await?;
            self.acknowledge(id, ctx).await?;
        }
        self.render(id)
    }

    /// Applies the call's `submitted_information` to resource `id`; false when it carried none.
    /// An expired quote is refreshed (the caller sees `quote_expired` and the new quote).
    async fn submit(
        &self,
        id: &str,
        req: &resources::CreateRequest,
        catalog: &Catalog,
        ctx: &Ctx,
    ) -> std::result::Result<bool, ResourceError> {
        let Some(info) = &req.submitted_information else {
            return Ok(false);
        };
        let current = self.load().ok_or(ResourceError::NotFound)?;
        let charge_id = new_id("chg");
        let submitted = self
            .commit(account::apply(&current, ctx, |d| {
                resources::submit_information(
                    d,
                    id,
                    info,
                    req.payment_token.clone(),
                    catalog,
                    &charge_id,
                )
            }))
            .await;
        if let Err(ResourceError::QuoteExpired) = submitted {
            self.requote(id, catalog, ctx).await?;
            return Err(ResourceError::QuoteExpired);
        }
        submitted.map(|()| true)
    }

    /// Replaces an expired quote with a fresh search.
    async fn requote(
        &self,
        id: &str,
        catalog: &Catalog,
        ctx: &Ctx,
    ) -> std::result::Result<(), ResourceError> {
        let current = self.load().ok_or(ResourceError::NotFound)?;
        let r = resources::find(&current, id)?;
        let (
            Detail::Domain {
                query, registrar, ..
            },
            Some(service),
        ) = (&r.detail, catalog.get(&r.service_id))
        else {
            return Ok(());
        };
        let (price, ttl) = match &service.provider {
            Behaviour::Domain {
                price,
                quote_ttl_seconds,
                ..
            } => (
                price.as_ref().map(|p| (p.amount, p.currency.clone())),
                *quote_ttl_seconds as i64,
            ),
            _ => return Ok(()),
        };
        let label = domain::domain_names::label(query).unwrap_or_default();
        let candidates = external::search(&self.env, &label, *registrar, price).await?;
        let current = self.load().ok_or(ResourceError::NotFound)?;
        self.commit(account::apply(&current, ctx, |d| {
            resources::refresh_quote(d, id, candidates, ttl)
        }))
        .await
    }
}
