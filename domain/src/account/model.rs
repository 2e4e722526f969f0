//! The account's stored shape: status, owner, grants, codes, token families and consents.
//!
//! Invariants:
//! - Every serde name here is part of the stored account object: renaming a field or a tag
//!   breaks accounts already stored (docs/STORAGE.md).
//! - Codes, tokens and consent ids appear only as SHA-256 hashes.
//! - `closed` is final; `closing` set means the account's tokens already stopped working.

use serde::{Deserialize, Serialize};

use crate::account_request::Orchestrator;
use crate::audit::ChainHead;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AccountStatus {
    Active,
    Suspended,
    Closed,
}

impl AccountStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountStatus::Active => "active",
            AccountStatus::Suspended => "suspended",
            AccountStatus::Closed => "closed",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Owner {
    pub email: String,
    pub name: Option<String>,
}

/// Authority given to an orchestrator account to act for the owner, with scopes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Grant {
    pub id: String,
    pub orchestrator: Orchestrator,
    pub scopes: Vec<String>,
    pub created_at: i64,
    /// `account_request` (a new account attested by the orchestrator, ToS accepted) or
    /// `consent` (the owner approved on the consent page).
    pub via: String,
    pub revoked_at: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthCode {
    pub hash: String,
    pub grant_id: String,
    /// The account request it answers (also the OAuth `state` on consent redirects).
    pub request_id: String,
    pub code_challenge: Option<String>,
    pub issued_at: i64,
    pub expires_at: i64,
    pub used_at: Option<i64>,
    /// The token family its first use issued, revoked if the code is used again.
    pub family_id: Option<String>,
}

/// An access/refresh token pair and its rotations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenFamily {
    pub id: String,
    pub grant_id: String,
    /// Issued without the orchestrator's signature (PKCE only): refreshes need no signature.
    pub public_client: bool,
    pub access_hash: String,
    pub access_expires_at: i64,
    pub refresh_hash: String,
    pub refresh_expires_at: i64,
    /// Hashes of refresh tokens already rotated out: presenting one revokes the family.
    pub retired_refresh: Vec<String>,
    pub generation: u32,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
    pub revoked_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(remote = "Self", rename_all = "snake_case")]
pub enum ConsentState {
    Pending,
    SignedIn { csrf_hash: String, at: i64 },
    Approved { at: i64 },
    Denied { at: i64 },
}
crate::internally_tagged!(ConsentState, "state");

/// An orchestrator's request to link an existing account, awaiting the owner's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consent {
    pub hash: String,
    pub request_id: String,
    pub orchestrator: Orchestrator,
    pub scopes: Vec<String>,
    pub code_challenge: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    /// Binds a sign-in assertion to this consent; replaced after each sign-in.
    pub nonce: String,
    pub state: ConsentState,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Account {
    pub id: String,
    pub status: AccountStatus,
    pub status_reason: Option<String>,
    pub owner: Owner,
    /// The orchestrator that created the account.
    pub orchestrator: Orchestrator,
    pub tos_version: String,
    /// When the owner accepted the terms, if the orchestrator said (its account request's
    /// `terms_accepted_at`). Absent in accounts stored before it existed and when not sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub terms_accepted_at: Option<i64>,
    pub created_at: i64,
    pub grants: Vec<Grant>,
    pub codes: Vec<AuthCode>,
    pub families: Vec<TokenFamily>,
    pub consents: Vec<Consent>,
    pub chain: ChainHead,
    #[serde(default)]
    pub resources: Vec<crate::resources::model::Resource>,
    #[serde(default)]
    pub ledger: crate::ledger::Ledger,
    #[serde(default)]
    pub billing: Billing,
    #[serde(default)]
    pub links: Vec<crate::dashboard::state::DeepLink>,
    #[serde(default)]
    pub sessions: Vec<crate::dashboard::state::Session>,
    #[serde(default)]
    pub stripe: crate::stripe_events::state::StripeState,
    /// Set while the account is being closed: its tokens already stopped working.
    #[serde(default)]
    pub closing: Option<String>,
}

impl Account {
    /// True when the account may act: active and not being closed.
    pub fn is_open(&self) -> bool {
        self.status == AccountStatus::Active && self.closing.is_none()
    }
}

/// Stripe objects of the account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Billing {
    pub customer_id: Option<String>,
    /// Replaced subscriptions (paid -> paid) whose cancellation failed in the plan change:
    /// retried from the alarm until Stripe has cancelled them, so only one plan bills.
    #[serde(default)]
    pub cancelling: Vec<crate::resources::model::StaleSubscription>,
}

/// Lifetimes, in seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    pub code_ttl: i64,
    pub access_ttl: i64,
    pub refresh_ttl: i64,
    pub consent_ttl: i64,
    /// A refresh of a token issued to the signed orchestrator client needs the signature
    /// (`REFRESH_REQUIRES_SIGNATURE`, default true); false accepts a refresh by possession.
    pub refresh_requires_signature: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy {
            code_ttl: 300,
            access_ttl: 3600,
            refresh_ttl: 30 * 86_400,
            consent_ttl: 3600,
            refresh_requires_signature: true,
        }
    }
}
