//! The account object's dashboard calls (`DashboardAction`): what the owner's session may see
//! and change (viewing and lowering the cap take the link's session; raising it and buying,
//! the owner's sign-in), answered as the page to show.

use domain::account::{self, Ctx};
use domain::dashboard::{self, DashboardError};
use domain::resources;

use crate::account_do::{now_s, Account};
use crate::http::new_id;
use crate::rpc::account::{DashboardAction, DashboardFailure, Shown};

impl Account {
    pub(super) async fn dashboard(
        &self,
        session_hash: &str,
        action: DashboardAction,
        ctx: &Ctx,
    ) -> std::result::Result<Shown, DashboardFailure> {
        let current = self
            .load()
            .ok_or(DashboardFailure::Page(DashboardError::SessionExpired))?;
        // Viewing and lowering the cap take the link's session; raising it and buying, the
        // owner's sign-in; nothing changes on an account that is not open.
        let change = match &action {
            DashboardAction::View => dashboard::Change::None,
            DashboardAction::SetCap { cap } if *cap <= current.ledger.cap => {
                dashboard::Change::Narrow
            }
            DashboardAction::SetCap { .. } | DashboardAction::Confirm { .. } => {
                dashboard::Change::Widen
            }
        };
        let how = match dashboard::authorize(&current, session_hash, ctx.now, change) {
            Ok(how) => how,
            Err(DashboardError::SignInRequired) => {
                let what = match action {
                    DashboardAction::Confirm { .. } => "Buying",
                    _ => "Raising the cap",
                };
                let notice = format!(
                    "{what} needs the owner's sign-in: sign in below, then try again. Nothing was changed."
                );
                return self.shown(session_hash, Some(notice), Some(403));
            }
            Err(e) => return Err(DashboardFailure::Page(e)),
        };
        let ctx = &Ctx {
            actor: domain::audit::Actor::owner(how),
            ..ctx.clone()
        };
        let mut notice = None;
        match action {
            DashboardAction::View => {}
            DashboardAction::SetCap { cap } => {
                let result = self
                    .commit(account::apply(&current, ctx, |d| {
                        dashboard::set_cap(d, session_hash, cap).map_err(DashboardFailure::Page)
                    }))
                    .await;
                match result {
                    Ok(()) => {
                        // Room under a raised cap resumes what the cap paused, before the page.
                        self.after_cap_change(ctx).await;
                        notice = Some(format!(
                            "The monthly cap is now {}.",
                            domain::ledger::format_amount(cap, &current.ledger.currency)
                        ))
                    }
                    Err(DashboardFailure::Page(DashboardError::InvalidCap)) => {
                        notice = Some("That cap is not valid: enter 0 to 10000 dollars.".into())
                    }
                    Err(e) => return Err(e),
                }
            }
            DashboardAction::Confirm {
                resource_id,
                domain: name,
                amount,
            } => {
                let req = resources::ConfirmRequest {
                    domain: name.clone(),
                    amount,
                    payment_token: None,
                };
                let charge_id = new_id("chg");
                let result = self
                    .commit(account::apply(&current, ctx, |d| {
                        resources::confirm_domain(d, &resource_id, &req, &charge_id)
                    }))
                    .await;
                let result = match result {
                    Ok(()) => {
                        let driven = self.drive(&resource_id, ctx).await;
                        let _ = self.acknowledge(&resource_id, ctx).await;
                        driven
                    }
                    Err(e) => Err(e),
                };
                notice = Some(match result {
                    Ok(()) => format!("Purchase of {name} confirmed."),
                    Err(e) => format!("The purchase did not go through: {}", e.failure().message),
                });
            }
        }
        self.shown(session_hash, notice, None)
    }

    /// The dashboard as a session sees it now, with a notice (and the page's status if not 200).
    fn shown(
        &self,
        session_hash: &str,
        notice: Option<String>,
        status: Option<u16>,
    ) -> std::result::Result<Shown, DashboardFailure> {
        let a = self
            .load()
            .ok_or(DashboardFailure::Page(DashboardError::SessionExpired))?;
        let now = now_s();
        let s = dashboard::session(&a, session_hash, now).map_err(DashboardFailure::Page)?;
        Ok(Shown {
            view: dashboard::session_view(&a, s, now),
            notice,
            status,
            signed_in: s.signed_in_at.is_some(),
            nonce: s.nonce.clone(),
        })
    }
}
