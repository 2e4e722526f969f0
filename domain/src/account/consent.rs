//! Consents: an orchestrator asks to link an existing account, and the owner signs in and
//! approves or denies on the consent page.
//!
//! Invariants:
//! - A consent moves `pending` -> `signed_in` -> `approved` | `denied`; an answered or expired
//!   consent accepts nothing more.
//! - Each sign-in spends the consent's nonce, so an assertion cannot be replayed; a sign-in by
//!   someone other than the owner is recorded and refused.
//! - The decision needs the CSRF token issued at sign-in; approval creates a grant and a code.

use crate::audit_action::AuditAction;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::error::{AccountError, ConsentError};
use super::grants::{add_code, add_grant, NewCode};
use super::kernel::Draft;
use super::model::{Account, Consent, ConsentState};
use crate::account_request::Orchestrator;
use crate::audit::Authentication;
use crate::tokens::same_hash;

/// Most open consents per account; opening more drops the oldest pending one.
pub const MAX_OPEN_CONSENTS: usize = 20;

/// An existing-account link request from an account request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenConsent {
    pub hash: String,
    pub request_id: String,
    pub orchestrator: Orchestrator,
    pub scopes: Vec<String>,
    pub code_challenge: Option<String>,
    /// The account request's `expires_at`; `None`: it does not expire (the consent still
    /// does, after the policy's `consent_ttl`). Absent in messages sent before it was optional.
    #[serde(default)]
    pub request_expires_at: Option<i64>,
    pub nonce: String,
}

/// Opens a consent (idempotent on its hash).
pub fn open_consent(d: &mut Draft, open: OpenConsent) -> Result<i64, AccountError> {
    d.require_active()?;
    if let Some(c) = d
        .account
        .consents
        .iter()
        .find(|c| same_hash(&c.hash, &open.hash))
    {
        return Ok(c.expires_at);
    }
    let now = d.now();
    let open_count = d
        .account
        .consents
        .iter()
        .filter(|c| {
            matches!(
                c.state,
                ConsentState::Pending | ConsentState::SignedIn { .. }
            ) && c.expires_at > now
        })
        .count();
    if open_count >= MAX_OPEN_CONSENTS {
        if let Some(oldest) = d.account.consents.iter().position(|c| {
            matches!(
                c.state,
                ConsentState::Pending | ConsentState::SignedIn { .. }
            )
        }) {
            d.account.consents.remove(oldest);
        }
    }
    let ttl_end = now + d.policy().consent_ttl;
    let expires_at = open.request_expires_at.map_or(ttl_end, |t| t.min(ttl_end));
    d.account.consents.push(Consent {
        hash: open.hash,
        request_id: open.request_id.clone(),
        orchestrator: open.orchestrator.clone(),
        scopes: open.scopes.clone(),
        code_challenge: open.code_challenge,
        created_at: now,
        expires_at,
        nonce: open.nonce,
        state: ConsentState::Pending,
    });
    d.record(
        AuditAction::ConsentRequested,
        None,
        Value::Null,
        json!({"account_request": open.request_id, "orchestrator": open.orchestrator,
               "scopes": open.scopes, "expires_at": expires_at}),
    );
    Ok(expires_at)
}

/// What the consent page shows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsentView {
    pub account_id: String,
    pub email: String,
    pub orchestrator: Orchestrator,
    pub scopes: Vec<String>,
    pub expires_at: i64,
    pub nonce: String,
    pub signed_in: bool,
}

fn find_consent(a: &Account, hash: &str, now: i64) -> Result<usize, AccountError> {
    let i = a
        .consents
        .iter()
        .position(|c| same_hash(&c.hash, hash))
        .ok_or(AccountError::Consent(ConsentError::Unknown))?;
    match a.consents[i].state {
        ConsentState::Approved { .. } => {
            Err(AccountError::Consent(ConsentError::AlreadyAnswered {
                approved: true,
            }))
        }
        ConsentState::Denied { .. } => Err(AccountError::Consent(ConsentError::AlreadyAnswered {
            approved: false,
        })),
        _ if a.consents[i].expires_at <= now => Err(AccountError::Consent(ConsentError::Expired)),
        _ => Ok(i),
    }
}

/// The consent page's content (read-only).
pub fn view_consent(a: &Account, hash: &str, now: i64) -> Result<ConsentView, AccountError> {
    if !a.is_open() {
        return Err(a.refusal());
    }
    let c = &a.consents[find_consent(a, hash, now)?];
    Ok(ConsentView {
        account_id: a.id.clone(),
        email: a.owner.email.clone(),
        orchestrator: c.orchestrator.clone(),
        scopes: c.scopes.clone(),
        expires_at: c.expires_at,
        nonce: c.nonce.clone(),
        signed_in: matches!(c.state, ConsentState::SignedIn { .. }),
    })
}

/// Why an owner sign-in (consent page or dashboard) was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignInRefusal {
    /// Not the nonce this page handed out (replayed, or from another page).
    BadNonce,
    /// Someone else signed in: the nonce is spent all the same.
    WrongOwner,
}

/// The one check of an owner sign-in, for every page that asks for one: the nonce the page
/// handed out (`expected`, never empty) came back, and the signed-in `email` (normalised) is
/// the owner's.
pub fn check_sign_in(
    a: &Account,
    expected: &str,
    nonce: &str,
    email: &str,
) -> Result<(), SignInRefusal> {
    if expected.is_empty() || !crate::crypto::ct_eq(expected.as_bytes(), nonce.as_bytes()) {
        return Err(SignInRefusal::BadNonce);
    }
    if email != a.owner.email {
        return Err(SignInRefusal::WrongOwner);
    }
    Ok(())
}

/// The owner proved who they are (a verified assertion or the dev form) for this consent.
/// `email` is normalised; `nonce` must be the consent's current nonce, which is then replaced,
/// so a sign-in cannot be replayed.
pub fn sign_in(
    d: &mut Draft,
    consent_hash: &str,
    email: &str,
    nonce: &str,
    next_nonce: String,
    csrf_hash: String,
) -> Result<(), AccountError> {
    d.require_active()?;
    let now = d.now();
    let i = find_consent(&d.account, consent_hash, now)?;
    let checked = check_sign_in(&d.account, &d.account.consents[i].nonce, nonce, email);
    if checked == Err(SignInRefusal::BadNonce) {
        return Err(AccountError::Consent(ConsentError::BadNonce));
    }
    if checked == Err(SignInRefusal::WrongOwner) {
        // Recorded, so the owner can see attempts; the nonce is spent either way.
        d.keep_on_error();
        d.account.consents[i].nonce = next_nonce;
        d.record(
            AuditAction::ConsentSignInRefused,
            None,
            Value::Null,
            json!({"account_request": d.account.consents[i].request_id.clone(), "reason": "wrong_owner"}),
        );
        return Err(AccountError::Consent(ConsentError::WrongOwner));
    }
    d.authenticate(Authentication::OwnerSignIn);
    let c = &mut d.account.consents[i];
    c.nonce = next_nonce;
    c.state = ConsentState::SignedIn { csrf_hash, at: now };
    let request_id = c.request_id.clone();
    d.record(
        AuditAction::ConsentSignedIn,
        None,
        Value::Null,
        json!({"account_request": request_id}),
    );
    Ok(())
}

/// Where to send the owner's browser after a decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub request_id: String,
    pub approved: bool,
}

/// The owner's decision on a signed-in consent. Approval creates a grant and a code (given by
/// the caller as `code` and `grant_id`).
pub fn decide(
    d: &mut Draft,
    consent_hash: &str,
    csrf_hash: &str,
    approve: bool,
    grant_id: &str,
    code_hash: String,
) -> Result<Decision, AccountError> {
    d.require_active()?;
    let now = d.now();
    let i = find_consent(&d.account, consent_hash, now)?;
    match &d.account.consents[i].state {
        ConsentState::SignedIn {
            csrf_hash: expected,
            ..
        } => {
            if !same_hash(expected, csrf_hash) {
                return Err(AccountError::Consent(ConsentError::BadCsrf));
            }
            // The CSRF token was issued at the owner's sign-in.
            d.authenticate(Authentication::OwnerSignIn);
        }
        _ => return Err(AccountError::Consent(ConsentError::NotSignedIn)),
    }
    let c = d.account.consents[i].clone();
    let consent_ref = format!("consent:{}", c.request_id);
    if approve {
        d.account.consents[i].state = ConsentState::Approved { at: now };
        d.record(
            AuditAction::ConsentApproved,
            Some(consent_ref.clone()),
            json!({"state": "signed_in"}),
            json!({"state": "approved", "account_request": c.request_id, "scopes": c.scopes}),
        );
        add_grant(
            d,
            grant_id,
            c.orchestrator.clone(),
            c.scopes.clone(),
            "consent",
            Some(consent_ref),
        );
        add_code(
            d,
            grant_id,
            &c.request_id,
            NewCode {
                hash: code_hash,
                code_challenge: c.code_challenge.clone(),
            },
        );
    } else {
        d.account.consents[i].state = ConsentState::Denied { at: now };
        d.record(
            AuditAction::ConsentDenied,
            Some(consent_ref),
            json!({"state": "signed_in"}),
            json!({"state": "denied", "account_request": c.request_id}),
        );
    }
    Ok(Decision {
        request_id: c.request_id,
        approved: approve,
    })
}
