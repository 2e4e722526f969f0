//! Deep links (docs/PROTOCOL.md §4.5) and the owner's dashboard behind them.
//!
//! A deep link is single-use and lives 10 minutes. Opening it starts a dashboard session of 30
//! minutes whose secret is carried by the page's forms (no cookie). Only hashes are stored.
//!
//! Authority: the agent can mint deep links, so a link's session may only look and make the
//! agent's room smaller (lower the cap). Raising the cap and buying need the owner's sign-in
//! (the same assertion or development form as the consent page), which replaces the session
//! with a signed-in one handed only to the browser that signed in. Nothing changes on an
//! account that is not open. Every record says which authentication it had.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::account::{check_sign_in, Account, Draft, SignInRefusal};
use crate::audit::Authentication;
use crate::audit_action::AuditAction;
use crate::catalog::ServiceKind;
use crate::resources::{self, Candidate, Detail, ResourceStatus};
use crate::tokens::same_hash;

pub mod place;
pub mod state;
pub use place::Place;
pub use state::{DeepLink, Session};

pub const LINK_TTL: i64 = 600;
pub const SESSION_TTL: i64 = 1800;
const MAX_LINKS: usize = 20;

/// What a dashboard action asks for, which decides the authentication it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// Looking only.
    None,
    /// Leaves the agent less room (lowering the cap): the deep link is enough.
    Narrow,
    /// Spends or gives the agent more room (raising the cap, buying): the owner's sign-in.
    Widen,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DashboardError {
    LinkUnknown,
    LinkExpired,
    LinkUsed,
    SessionExpired,
    InvalidCap,
    /// Raising the cap or buying through a deep link alone.
    SignInRequired,
    /// A sign-in whose nonce is not the session's current one (replayed or stale).
    SignInStale,
    /// Someone other than the owner signed in.
    WrongOwner,
    /// The account is suspended, closing or closed: the dashboard changes nothing.
    AccountInactive,
}

impl DashboardError {
    /// Status, title and text of the page that explains it.
    pub fn page(self) -> (u16, &'static str, &'static str) {
        match self {
            DashboardError::LinkUnknown => (
                404,
                "This link is not valid",
                "Ask your tool for a new dashboard link.",
            ),
            DashboardError::LinkExpired => (
                410,
                "This link has expired",
                "Dashboard links last 10 minutes. Ask your tool for a new one.",
            ),
            DashboardError::LinkUsed => (
                409,
                "This link was already used",
                "Each dashboard link opens once. Ask your tool for a new one.",
            ),
            DashboardError::SessionExpired => (
                403,
                "Your session has ended",
                "Ask your tool for a new dashboard link. Nothing was changed.",
            ),
            DashboardError::InvalidCap => (
                400,
                "That cap is not valid",
                "Enter a whole number of dollars between 0 and 10000.",
            ),
            DashboardError::SignInRequired => (
                403,
                "Sign in first",
                "Raising the cap or buying needs the owner's sign-in. Nothing was changed.",
            ),
            DashboardError::SignInStale => (
                409,
                "This sign-in is no longer valid",
                "Each sign-in works once. Ask your tool for a new dashboard link, then sign in. Nothing was changed.",
            ),
            DashboardError::WrongOwner => (
                403,
                "That is not the owner's account",
                "Sign in with the account owner's email address. Nothing was changed.",
            ),
            DashboardError::AccountInactive => (
                403,
                "This account is not available",
                "The account is suspended or closed. Nothing was changed.",
            ),
        }
    }
}

/// Issues a deep link (its hash comes from the caller); returns its expiry. A path naming a
/// resource must name one the account has (a clear answer now, not a dead place later).
pub fn create_link(
    d: &mut Draft,
    hash: String,
    req: &resources::DeepLinkRequest,
) -> Result<i64, resources::ResourceError> {
    if let Some(Place::Resource(id)) = req.path.as_deref().and_then(Place::parse) {
        if resources::find_served(&d.account, &id).is_err() {
            return Err(resources::ResourceError::InvalidRequest {
                message: format!("path /resources/{id} names no resource of this account"),
            });
        }
    }
    let now = d.now();
    let expires_at = now + LINK_TTL;
    d.account
        .links
        .retain(|l| l.expires_at > now && l.used_at.is_none());
    if d.account.links.len() >= MAX_LINKS {
        d.account.links.remove(0);
    }
    d.account.links.push(DeepLink {
        hash,
        purpose: req.purpose.clone(),
        path: req.path.clone(),
        created_at: now,
        expires_at,
        used_at: None,
    });
    d.record(
        AuditAction::DeepLinkCreated,
        None,
        Value::Null,
        json!({"purpose": req.purpose, "path": req.path, "expires_at": expires_at}),
    );
    Ok(expires_at)
}

/// Where a link of this purpose and path lands: `None` for the top of the page (the plain
/// `dashboard` link), else the path of its place.
fn landing_path(purpose: &str, path: Option<&str>) -> Option<String> {
    let place = path
        .and_then(Place::parse)
        .or_else(|| Place::of_purpose(purpose))?;
    match (place, path) {
        (Place::Overview, None) => None,
        (place, _) => Some(place.path()),
    }
}

/// The fragment of a link's URL (`#<anchor>`), so the browser scrolls to where it lands; empty
/// for the top of the page.
pub fn link_fragment(req: &resources::DeepLinkRequest) -> String {
    landing_path(&req.purpose, req.path.as_deref())
        .and_then(|p| Place::parse(&p))
        .map(|place| format!("#{}", place.anchor()))
        .unwrap_or_default()
}

/// Opens a link once, starting a session (its hash and sign-in nonce come from the caller).
/// The session keeps where the link lands, so the owner's sign-in returns there too.
pub fn open(
    d: &mut Draft,
    link_hash: &str,
    session_hash: String,
    nonce: String,
) -> Result<(), DashboardError> {
    let now = d.now();
    let link = d
        .account
        .links
        .iter_mut()
        .find(|l| same_hash(&l.hash, link_hash))
        .ok_or(DashboardError::LinkUnknown)?;
    if link.used_at.is_some() {
        return Err(DashboardError::LinkUsed);
    }
    if link.expires_at <= now {
        return Err(DashboardError::LinkExpired);
    }
    link.used_at = Some(now);
    let place = landing_path(&link.purpose, link.path.as_deref());
    d.account.sessions.retain(|s| s.expires_at > now);
    d.account.sessions.push(Session {
        hash: session_hash,
        expires_at: now + SESSION_TTL,
        nonce,
        signed_in_at: None,
        place,
    });
    d.record(
        AuditAction::DashboardOpened,
        None,
        Value::Null,
        json!({"session_expires_at": now + SESSION_TTL}),
    );
    Ok(())
}

/// The live session with this hash.
pub fn session<'a>(
    a: &'a Account,
    session_hash: &str,
    now: i64,
) -> Result<&'a Session, DashboardError> {
    a.sessions
        .iter()
        .find(|s| same_hash(&s.hash, session_hash) && s.expires_at > now)
        .ok_or(DashboardError::SessionExpired)
}

pub fn check_session(a: &Account, session_hash: &str, now: i64) -> Result<(), DashboardError> {
    session(a, session_hash, now).map(|_| ())
}

/// May this session make `change`? Returns the authentication its records carry.
pub fn authorize(
    a: &Account,
    session_hash: &str,
    now: i64,
    change: Change,
) -> Result<Authentication, DashboardError> {
    let s = session(a, session_hash, now)?;
    if change != Change::None && !a.is_open() {
        return Err(DashboardError::AccountInactive);
    }
    if change == Change::Widen && s.signed_in_at.is_none() {
        return Err(DashboardError::SignInRequired);
    }
    Ok(s.authentication())
}

/// The owner signs in on a dashboard session: `nonce` (from the page, then through the
/// operator's login or the development form) names the session; `session_hash` is given when
/// the form itself came with the session (development form). On success the session is
/// replaced by a signed-in one under `next_hash`, so a session the agent opened itself never
/// gains the owner's authority. A wrong owner spends the nonce and is recorded.
pub fn sign_in(
    d: &mut Draft,
    session_hash: Option<&str>,
    nonce: &str,
    email: &str,
    next_hash: String,
    next_nonce: String,
) -> Result<(), DashboardError> {
    let now = d.now();
    let i = d
        .account
        .sessions
        .iter()
        .position(|s| {
            s.expires_at > now
                && !s.nonce.is_empty()
                && crate::crypto::ct_eq(s.nonce.as_bytes(), nonce.as_bytes())
        })
        .ok_or(DashboardError::SignInStale)?;
    if session_hash.is_some_and(|h| !same_hash(&d.account.sessions[i].hash, h)) {
        return Err(DashboardError::SignInStale);
    }
    if !d.account.is_open() {
        return Err(DashboardError::AccountInactive);
    }
    let expected = d.account.sessions[i].nonce.clone();
    match check_sign_in(&d.account, &expected, nonce, email) {
        Err(SignInRefusal::BadNonce) => Err(DashboardError::SignInStale),
        Err(SignInRefusal::WrongOwner) => {
            // Recorded, so the owner can see attempts; the nonce is spent either way.
            d.keep_on_error();
            d.account.sessions[i].nonce = next_nonce;
            d.record(
                AuditAction::DashboardSignInRefused,
                None,
                Value::Null,
                json!({"reason": "wrong_owner"}),
            );
            Err(DashboardError::WrongOwner)
        }
        Ok(()) => {
            d.authenticate(Authentication::OwnerSignIn);
            let s = &mut d.account.sessions[i];
            s.hash = next_hash;
            s.nonce = next_nonce;
            s.signed_in_at = Some(now);
            let expires_at = s.expires_at;
            d.record(
                AuditAction::DashboardSignedIn,
                None,
                Value::Null,
                json!({"session_expires_at": expires_at}),
            );
            Ok(())
        }
    }
}

/// The owner sets the monthly spending cap (in cents). Lowering it takes the deep link's
/// session; raising it, the owner's sign-in.
pub fn set_cap(d: &mut Draft, session_hash: &str, cap: u64) -> Result<(), DashboardError> {
    check_session(&d.account, session_hash, d.now())?;
    if cap > crate::ledger::MAX_CAP {
        return Err(DashboardError::InvalidCap);
    }
    let change = if cap > d.account.ledger.cap {
        Change::Widen
    } else {
        Change::Narrow
    };
    let how = authorize(&d.account, session_hash, d.now(), change)?;
    d.authenticate(how);
    let before = d.account.ledger.cap;
    d.account.ledger.cap = cap;
    d.record(
        AuditAction::SpendCapChanged,
        None,
        json!({"cap": before}),
        json!({"cap": cap}),
    );
    Ok(())
}

/// A quote awaiting confirmation, as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingQuote {
    pub resource_id: String,
    pub candidates: Vec<Candidate>,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResourceLine {
    pub id: String,
    pub service_id: String,
    pub project_id: String,
    pub status: String,
    pub detail: String,
}

/// What the dashboard shows: never a secret.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct View {
    pub account_id: String,
    pub email: String,
    pub status: String,
    pub plan: Option<String>,
    pub resources: Vec<ResourceLine>,
    pub spent: u64,
    pub cap: u64,
    pub currency: String,
    pub quotes: Vec<PendingQuote>,
    /// Where the session's link landed, if not the top of the page.
    #[serde(default)]
    pub landing: Option<Landing>,
    /// Usage reported this month after the cap was reached (billed all the same).
    #[serde(default)]
    pub over_cap: u64,
    /// Usage-based resources the cap paused.
    #[serde(default)]
    pub paused: Vec<String>,
    /// Credits granted and not expired.
    #[serde(default)]
    pub credits: Vec<CreditLine>,
}

/// A credit grant as the owner sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditLine {
    pub amount: u64,
    pub left: u64,
    pub reason: String,
    pub expires_at: i64,
}

/// The section a deep link opened on, as the page marks it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Landing {
    /// The section's HTML `id` (`place::Place::anchor`).
    pub anchor: String,
    /// What the section is, for the page.
    pub title: String,
    /// Said when the place is gone (a resource removed since the link was made).
    pub note: Option<String>,
}

/// Where a session lands on the page: the place its link named, or the resource list with a
/// note when that resource is gone.
pub fn landing(a: &Account, s: &Session) -> Option<Landing> {
    let place = Place::parse(s.place.as_deref()?)?;
    let gone = match &place {
        Place::Resource(id) => resources::find_served(a, id).is_err().then(|| id.clone()),
        _ => None,
    };
    let (place, note) = match gone {
        Some(id) => (
            Place::Resources,
            Some(format!(
                "Resource {id} is no longer on this account; these are the ones it has."
            )),
        ),
        None => (place, None),
    };
    let title = match &place {
        Place::Overview => "Your account".to_string(),
        Place::Billing => "Spending cap".to_string(),
        Place::Resources => "Resources".to_string(),
        Place::Resource(id) => format!("Resource {id}"),
    };
    Some(Landing {
        anchor: place.anchor(),
        title,
        note,
    })
}

/// What the dashboard shows to a session: [`view`], landing where its link pointed.
pub fn session_view(a: &Account, s: &Session, now: i64) -> View {
    View {
        landing: landing(a, s),
        ..view(a, now)
    }
}

pub fn view(a: &Account, now: i64) -> View {
    let plan =
        resources::current_plan(a).map(|p| format!("{} ({})", p.service_id, p.status.as_str()));
    // A replaced subscription still billing is said until it is cancelled.
    let plan = match resources::stale_note(a) {
        Some(note) => Some(format!("{}; {note}", plan.as_deref().unwrap_or("none"))),
        None => plan,
    };
    let lines = a
        .resources
        .iter()
        .filter(|r| r.status != ResourceStatus::Removed)
        .map(|r| ResourceLine {
            id: r.id.clone(),
            service_id: r.service_id.clone(),
            project_id: r.project_id.clone(),
            status: r.status.as_str().to_string(),
            detail: match (&r.detail, r.kind) {
                (
                    Detail::Domain {
                        domain: Some(d), ..
                    },
                    _,
                ) => d.clone(),
                (Detail::Domain { query, .. }, _) => format!("search: {query}"),
                (
                    Detail::ApiToken {
                        scopes, generation, ..
                    },
                    _,
                ) => format!("scopes {}, generation {generation}", scopes.join(" ")),
                (
                    Detail::Plan {
                        subscription_status: Some(s),
                        ..
                    },
                    ServiceKind::Plan,
                ) => format!("subscription {s}"),
                (Detail::Operator { usage: Some(_), .. }, _) => {
                    let used = crate::ledger::format_amount(
                        usage_this_month(a, &r.id, now),
                        &a.ledger.currency,
                    );
                    match r.hold.as_ref().and_then(|h| h.cap.as_ref()) {
                        Some(_) => {
                            format!("usage-based, {used} this month; paused by the spending cap")
                        }
                        None => format!("usage-based, {used} this month"),
                    }
                }
                (Detail::Operator { .. }, _) if r.hold.as_ref().is_some_and(|h| h.unpaid) => {
                    "paused: its invoice is unpaid; update the payment method".to_string()
                }
                _ => String::new(),
            },
        })
        .collect();
    let quotes = a
        .resources
        .iter()
        .filter(|r| r.status == ResourceStatus::NeedsInformation && r.job.is_none())
        .filter_map(|r| match &r.detail {
            Detail::Domain { quote: Some(q), .. } if q.expires_at > now => Some(PendingQuote {
                resource_id: r.id.clone(),
                candidates: q.candidates.clone(),
                expires_at: q.expires_at,
            }),
            _ => None,
        })
        .collect();
    View {
        account_id: a.id.clone(),
        email: a.owner.email.clone(),
        status: a.status.as_str().to_string(),
        plan,
        resources: lines,
        spent: a.ledger.spent(now),
        cap: a.ledger.cap,
        currency: a.ledger.currency.clone(),
        quotes,
        landing: None,
        over_cap: {
            let (month, _) = crate::time::month_bounds(now);
            a.ledger
                .usage
                .iter()
                .filter(|u| u.month == month && u.over_cap)
                .map(|u| u.amount)
                .fold(0, u64::saturating_add)
        },
        credits: a
            .ledger
            .credits
            .iter()
            .filter(|c| c.expires_at > now)
            .map(|c| CreditLine {
                amount: c.amount,
                left: c.left(now),
                reason: c.reason.clone(),
                expires_at: c.expires_at,
            })
            .collect(),
        paused: a
            .resources
            .iter()
            .filter(|r| r.status != ResourceStatus::Removed)
            .filter(|r| r.hold.as_ref().is_some_and(|h| h.cap.is_some()))
            .map(|r| r.id.clone())
            .collect(),
    }
}

/// The operator's view of an account (`GET /v1/accounts/{id}`): state, plan, resources without
/// secrets, spend this month, and where the audit chain stands.
/// Usage reported for resource `id` in the month of `now`.
fn usage_this_month(a: &Account, id: &str, now: i64) -> u64 {
    let (month, _) = crate::time::month_bounds(now);
    a.ledger
        .usage
        .iter()
        .filter(|u| u.month == month && u.resource_id == id)
        .map(|u| u.amount)
        .fold(0, u64::saturating_add)
}

/// The month's usage as the operator sees it: reported, over the cap, not yet billed, failed.
fn usage_summary(a: &Account, now: i64) -> Value {
    let (month, _) = crate::time::month_bounds(now);
    let this: Vec<_> = a.ledger.usage.iter().filter(|u| u.month == month).collect();
    let sum = |f: &dyn Fn(&&crate::ledger::UsageRecord) -> bool| {
        this.iter()
            .filter(|u| f(u))
            .map(|u| u.amount)
            .fold(0, u64::saturating_add)
    };
    json!({
        "reported": sum(&|_| true),
        "credited": this.iter().map(|u| u.credited).fold(0, u64::saturating_add),
        "over_cap": sum(&|u| u.over_cap),
        "unbilled": a.ledger.usage.iter().filter(|u| u.meter.pending()).count(),
        "billing_failed": a.ledger.usage.iter().filter(|u| u.meter.error.is_some()).map(|u| u.key.clone()).collect::<Vec<_>>(),
    })
}

pub fn operator_view(a: &Account, now: i64) -> Value {
    let (month, _) = crate::time::month_bounds(now);
    let resources: Vec<Value> = a.resources.iter().map(resources::summary).collect();
    json!({
        "id": a.id,
        "object": "account",
        "status": if a.closing.is_some() && a.status != crate::account::AccountStatus::Closed { "closing" } else { a.status.as_str() },
        "status_reason": a.status_reason.clone().or_else(|| a.closing.clone()),
        "email": a.owner.email,
        "name": a.owner.name,
        "created_at": crate::time::format_rfc3339(a.created_at),
        "tos_version": a.tos_version,
        "orchestrator": a.orchestrator,
        "plan": resources::current_plan(a).map(resources::summary),
        "subscriptions_cancelling": a.billing.cancelling,
        "resources": resources,
        "spend": {"month": crate::time::format_rfc3339(month), "spent": a.ledger.spent(now),
                  "cap": a.ledger.cap, "currency": a.ledger.currency,
                  "usage": usage_summary(a, now),
                  "credit_left": a.ledger.credit_left(now)},
        "credits": a.ledger.credits.iter().map(|c| crate::usage::credits::render(c, false, now)).collect::<Vec<_>>(),
        "live_grants": a.grants.iter().filter(|g| g.revoked_at.is_none()).count(),
        "live_token_pairs": a.families.iter().filter(|f| f.revoked_at.is_none()).count(),
        "audit": {"next_seq": a.chain.next_seq, "last_hash": a.chain.last_hash},
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::account::{apply, create, suspend, Account, Ctx, NewAccount, NewCode, Policy};
    use crate::account_request::Orchestrator;
    use crate::audit::{Actor, ActorKind, AuditRecord};
    use crate::tokens::hash;

    const T0: i64 = 1_800_000_000;

    fn ctx(now: i64, actor: Actor) -> Ctx {
        Ctx {
            now,
            actor,
            request_id: Some("req_test".into()),
            policy: Policy::default(),
        }
    }

    struct World {
        account: Account,
        log: Vec<AuditRecord>,
    }

    impl World {
        /// An account with a $100 cap and an opened dashboard session `s1` (nonce `n1`).
        fn new() -> World {
            let new = NewAccount {
                id: "acct_aaaaaaaaaaaaaaaa".into(),
                email: "dev@example.com".into(),
                name: None,
                orchestrator: Orchestrator {
                    kind: "stripe".into(),
                    organisation: None,
                    account: "acct_stripe_1".into(),
                },
                tos_version: "2026-11-01".into(),
                terms_accepted_at: None,
                scopes: vec!["resources:write".into()],
                request_id: "acctreq_1".into(),
                grant_id: "grant_1".into(),
                code: NewCode {
                    hash: hash("code-1"),
                    code_challenge: None,
                },
                spending_cap: 10_000,
                currency: None,
            };
            let orchestrator = Actor::new(ActorKind::Orchestrator, Some("acct_stripe_1"));
            let applied = create(new, &ctx(T0, orchestrator.clone()));
            let mut w = World {
                account: applied.account,
                log: applied.records,
            };
            w.run(orchestrator, |d| {
                create_link(d, hash("link-1"), &request("dashboard", None))
                    .map_err(|_| DashboardError::LinkUnknown)?;
                Ok(())
            })
            .unwrap();
            w.link(|d| open(d, &hash("link-1"), hash("s1"), "n1".into()))
                .unwrap();
            w
        }

        fn run<T>(
            &mut self,
            actor: Actor,
            op: impl FnOnce(&mut Draft) -> Result<T, DashboardError>,
        ) -> Result<T, DashboardError> {
            let applied = apply(&self.account, &ctx(T0 + 10, actor), op);
            self.account = applied.account;
            self.log.extend(applied.records);
            applied.result
        }

        /// As the Durable Object calls it: the owner, known only by the deep link so far.
        fn link<T>(
            &mut self,
            op: impl FnOnce(&mut Draft) -> Result<T, DashboardError>,
        ) -> Result<T, DashboardError> {
            self.run(Actor::owner(Authentication::DeepLink), op)
        }

        fn last(&self) -> &AuditRecord {
            self.log.last().unwrap()
        }
    }

    fn request(purpose: &str, path: Option<&str>) -> resources::DeepLinkRequest {
        resources::DeepLinkRequest {
            purpose: purpose.into(),
            path: path.map(str::to_string),
        }
    }

    /// Mints and opens a link; the session's landing.
    fn open_at(w: &mut World, n: u8, purpose: &str, path: Option<&str>) -> Option<Landing> {
        let (link, session) = (hash(&format!("link-p{n}")), hash(&format!("s-p{n}")));
        let orchestrator = Actor::new(ActorKind::Orchestrator, Some("acct_stripe_1"));
        w.run(orchestrator, |d| {
            create_link(d, link.clone(), &request(purpose, path))
                .map_err(|_| DashboardError::LinkUnknown)
        })
        .unwrap();
        w.link(|d| open(d, &link, session.clone(), format!("n-p{n}")))
            .unwrap();
        let s = session_of(&w.account, &session);
        session_view(&w.account, s, T0 + 10).landing
    }

    fn session_of<'a>(a: &'a Account, hash: &str) -> &'a Session {
        super::session(a, hash, T0 + 10).unwrap()
    }

    #[test]
    fn a_link_lands_where_its_purpose_and_path_say() {
        let mut w = World::new();
        // The plain dashboard link: the top of the page, as before paths existed.
        assert_eq!(open_at(&mut w, 1, "dashboard", None), None);
        let at = |anchor: &str, title: &str| {
            Some(Landing {
                anchor: anchor.into(),
                title: title.into(),
                note: None,
            })
        };
        assert_eq!(
            open_at(&mut w, 2, "billing", None),
            at("billing", "Spending cap")
        );
        assert_eq!(
            open_at(&mut w, 3, "dashboard", Some("/billing")),
            at("billing", "Spending cap")
        );
        // The path wins over the purpose's place.
        assert_eq!(
            open_at(&mut w, 4, "billing", Some("/resources")),
            at("resources", "Resources")
        );
        assert_eq!(
            open_at(&mut w, 5, "billing", Some("/")),
            at("overview", "Your account")
        );
        // The record says what was asked for.
        let created = w
            .log
            .iter()
            .rev()
            .find(|r| r.action == "deep_link.created")
            .unwrap();
        assert_eq!(created.after["purpose"], "billing");
        assert_eq!(created.after["path"], "/");
        let plain = w
            .log
            .iter()
            .find(|r| r.action == "deep_link.created")
            .unwrap();
        assert_eq!(plain.after["purpose"], "dashboard");
        assert!(plain.after["path"].is_null());
        assert_eq!(verify_chain(&w.log), Ok(()));
    }

    #[test]
    fn a_path_to_a_resource_must_name_one_and_says_when_it_is_gone() {
        let w = World::new();
        let n = w.log.len();
        let orchestrator = Actor::new(ActorKind::Orchestrator, Some("acct_stripe_1"));
        let applied = apply(&w.account, &ctx(T0 + 10, orchestrator), |d| {
            create_link(
                d,
                hash("l"),
                &request("dashboard", Some("/resources/res_nope")),
            )
        });
        assert!(
            matches!(&applied.result, Err(resources::ResourceError::InvalidRequest { message }) if message.contains("res_nope")),
            "{:?}",
            applied.result
        );
        assert!(applied.records.is_empty());
        assert_eq!(w.log.len(), n);
        // A session whose resource went away since: the list, and a sentence saying so.
        let s = Session {
            place: Some("/resources/res_gone".into()),
            ..session_of(&w.account, &hash("s1")).clone()
        };
        let landing = landing(&w.account, &s).unwrap();
        assert_eq!(landing.anchor, "resources");
        assert!(landing.note.unwrap().contains("res_gone"));
    }

    #[test]
    fn sessions_stored_before_places_existed_land_at_the_top() {
        let s: Session =
            serde_json::from_value(json!({"hash": "h", "expires_at": 1, "nonce": "n"})).unwrap();
        assert_eq!(s.place, None);
        let l: DeepLink = serde_json::from_value(json!({"hash": "h", "purpose": "dashboard",
            "created_at": 0, "expires_at": 1, "used_at": null}))
        .unwrap();
        assert_eq!(l.path, None);
    }

    #[test]
    fn a_deep_link_lowers_the_cap_but_cannot_raise_it() {
        let mut w = World::new();
        let before = w.log.len();
        // The reproduction of issue 18: the agent's link sets $10,000.
        assert_eq!(
            w.link(|d| set_cap(d, &hash("s1"), 1_000_000)),
            Err(DashboardError::SignInRequired)
        );
        assert_eq!(w.account.ledger.cap, 10_000, "nothing changed");
        assert_eq!(w.log.len(), before, "nothing recorded");
        // Lowering stays one click, and says it had only the link.
        w.link(|d| set_cap(d, &hash("s1"), 5_000)).unwrap();
        assert_eq!(w.account.ledger.cap, 5_000);
        assert_eq!(w.last().action, "spend.cap_changed");
        assert_eq!(w.last().authentication.as_deref(), Some("deep_link"));
        // Back up to where it was is a raise too.
        assert_eq!(
            w.link(|d| set_cap(d, &hash("s1"), 10_000)),
            Err(DashboardError::SignInRequired)
        );
        assert_eq!(
            authorize(&w.account, &hash("s1"), T0 + 10, Change::Widen),
            Err(DashboardError::SignInRequired),
            "buying needs the sign-in too"
        );
        assert_eq!(
            authorize(&w.account, &hash("s1"), T0 + 10, Change::None),
            Ok(Authentication::DeepLink)
        );
    }

    #[test]
    fn the_owners_sign_in_raises_the_cap_on_a_new_session() {
        let mut w = World::new();
        w.link(|d| sign_in(d, None, "n1", "dev@example.com", hash("s2"), "n2".into()))
            .unwrap();
        assert_eq!(w.last().action, "dashboard.signed_in");
        assert_eq!(w.last().authentication.as_deref(), Some("owner_sign_in"));
        // The link's session is gone (whoever else holds it gains nothing); the new one may raise.
        assert_eq!(
            w.link(|d| set_cap(d, &hash("s1"), 20_000)),
            Err(DashboardError::SessionExpired)
        );
        w.link(|d| set_cap(d, &hash("s2"), 20_000)).unwrap();
        assert_eq!(w.account.ledger.cap, 20_000);
        assert_eq!(w.last().authentication.as_deref(), Some("owner_sign_in"));
        assert_eq!(
            authorize(&w.account, &hash("s2"), T0 + 10, Change::Widen),
            Ok(Authentication::OwnerSignIn)
        );
        // The nonce worked once.
        assert_eq!(
            w.link(|d| sign_in(d, None, "n1", "dev@example.com", hash("s3"), "n3".into())),
            Err(DashboardError::SignInStale)
        );
        assert_eq!(verify_chain(&w.log), Ok(()));
    }

    #[test]
    fn sign_in_refuses_strangers_stale_nonces_and_other_sessions() {
        let mut w = World::new();
        let n = w.log.len();
        assert_eq!(
            w.link(|d| sign_in(d, None, "", "dev@example.com", hash("s2"), "n2".into())),
            Err(DashboardError::SignInStale)
        );
        assert_eq!(
            w.link(|d| sign_in(
                d,
                Some(&hash("other")),
                "n1",
                "dev@example.com",
                hash("s2"),
                "n2".into()
            )),
            Err(DashboardError::SignInStale)
        );
        assert_eq!(w.log.len(), n);
        // Someone else: refused, recorded, and the nonce is spent.
        assert_eq!(
            w.link(|d| sign_in(d, None, "n1", "eve@example.com", hash("s2"), "n2".into())),
            Err(DashboardError::WrongOwner)
        );
        assert_eq!(w.last().action, "dashboard.sign_in_refused");
        assert_eq!(w.last().authentication.as_deref(), Some("deep_link"));
        assert_eq!(
            w.link(|d| sign_in(d, None, "n1", "dev@example.com", hash("s2"), "n3".into())),
            Err(DashboardError::SignInStale)
        );
        assert!(w.account.sessions.iter().all(|s| s.signed_in_at.is_none()));
    }

    #[test]
    fn a_suspended_account_changes_nothing_on_the_dashboard() {
        let mut w = World::new();
        let operator = Actor::new(ActorKind::Operator, None);
        w.run(operator, |d| {
            suspend(d, "review").map_err(|_| DashboardError::AccountInactive)
        })
        .unwrap();
        let n = w.log.len();
        assert_eq!(
            w.link(|d| set_cap(d, &hash("s1"), 5_000)),
            Err(DashboardError::AccountInactive)
        );
        assert_eq!(
            w.link(|d| sign_in(d, None, "n1", "dev@example.com", hash("s2"), "n2".into())),
            Err(DashboardError::AccountInactive)
        );
        assert_eq!((w.account.ledger.cap, w.log.len()), (10_000, n));
        // Looking stays possible.
        assert_eq!(
            authorize(&w.account, &hash("s1"), T0 + 10, Change::None),
            Ok(Authentication::DeepLink)
        );
    }

    #[test]
    fn sessions_stored_before_sign_in_existed_still_read() {
        let old = r#"{"hash":"abc","expires_at":1800000000}"#;
        let s: Session = serde_json::from_str(old).unwrap();
        assert_eq!((s.nonce.as_str(), s.signed_in_at), ("", None));
        assert_eq!(s.authentication(), Authentication::DeepLink);
    }

    use crate::audit::verify_chain;
}
