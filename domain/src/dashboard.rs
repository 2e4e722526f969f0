//! Deep links (PROTOCOL.md §5.3) and the owner's dashboard behind them.
//!
//! A deep link is single-use and lives 10 minutes. Opening it starts a dashboard session of 30
//! minutes whose secret is carried by the page's forms (no cookie). Only hashes are stored.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::account::{Account, Draft};
use crate::catalog::ServiceKind;
use crate::resources::{self, Candidate, Detail, Status};
use crate::tokens::same_hash;

pub const LINK_TTL: i64 = 600;
pub const SESSION_TTL: i64 = 1800;
const MAX_LINKS: usize = 20;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeepLink {
    pub hash: String,
    pub purpose: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub hash: String,
    pub expires_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DashboardError {
    LinkUnknown,
    LinkExpired,
    LinkUsed,
    SessionExpired,
    InvalidCap,
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
        }
    }
}

/// Issues a deep link (its hash comes from the caller); returns its expiry.
pub fn create_link(d: &mut Draft, hash: String, purpose: &str) -> i64 {
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
        purpose: purpose.to_string(),
        created_at: now,
        expires_at,
        used_at: None,
    });
    d.record(
        "deep_link.created",
        None,
        Value::Null,
        json!({"purpose": purpose, "expires_at": expires_at}),
    );
    expires_at
}

/// Opens a link once, starting a session (its hash comes from the caller).
pub fn open(d: &mut Draft, link_hash: &str, session_hash: String) -> Result<(), DashboardError> {
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
    d.account.sessions.retain(|s| s.expires_at > now);
    d.account.sessions.push(Session {
        hash: session_hash,
        expires_at: now + SESSION_TTL,
    });
    d.record(
        "dashboard.opened",
        None,
        Value::Null,
        json!({"session_expires_at": now + SESSION_TTL}),
    );
    Ok(())
}

pub fn check_session(a: &Account, session_hash: &str, now: i64) -> Result<(), DashboardError> {
    a.sessions
        .iter()
        .find(|s| same_hash(&s.hash, session_hash) && s.expires_at > now)
        .map(|_| ())
        .ok_or(DashboardError::SessionExpired)
}

/// The owner sets the monthly spending cap (in cents).
pub fn set_cap(d: &mut Draft, session_hash: &str, cap: u64) -> Result<(), DashboardError> {
    check_session(&d.account, session_hash, d.now())?;
    if cap > crate::ledger::MAX_CAP {
        return Err(DashboardError::InvalidCap);
    }
    let before = d.account.ledger.cap;
    d.account.ledger.cap = cap;
    d.record(
        "spend.cap_changed",
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
        .filter(|r| r.status != Status::Removed)
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
                _ => String::new(),
            },
        })
        .collect();
    let quotes = a
        .resources
        .iter()
        .filter(|r| r.status == Status::NeedsInformation && r.job.is_none())
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
    }
}

/// The operator's view of an account (`GET /v1/accounts/{id}`): state, plan, resources without
/// secrets, spend this month, and where the audit chain stands.
pub fn operator_view(a: &Account, now: i64) -> Value {
    let (month, _) = crate::time::month_bounds(now);
    let resources: Vec<Value> = a.resources.iter().map(resources::summary).collect();
    json!({
        "id": a.id,
        "object": "account",
        "status": if a.closing.is_some() && a.status != crate::account::Status::Closed { "closing" } else { a.status.as_str() },
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
                  "cap": a.ledger.cap, "currency": a.ledger.currency},
        "live_grants": a.grants.iter().filter(|g| g.revoked_at.is_none()).count(),
        "live_token_pairs": a.families.iter().filter(|f| f.revoked_at.is_none()).count(),
        "audit": {"next_seq": a.chain.next_seq, "last_hash": a.chain.last_hash},
    })
}
