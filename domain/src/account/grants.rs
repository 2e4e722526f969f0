//! Grants, authorization codes and token families: issuing, exchange, refresh rotation, reuse
//! detection, bearer checks and revocation (RFC 6749, 7009, 7662).
//!
//! Invariants:
//! - A code is used once. A second use fails and revokes the family its first use issued.
//! - A refresh rotates: the presented token is retired, and presenting a retired one revokes
//!   its family. Both reactions persist although the request fails (`keep_on_error`).
//! - Only a live family under a live grant of an open account authenticates.
//! - Every family revocation goes through `revoke_family`: one `token.revoked` record each.

use crate::audit_action::AuditAction;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::error::{grant_err, AccountError};
use super::kernel::Draft;
use super::model::{Account, AuthCode, Grant, TokenFamily};
use crate::account_request::Orchestrator;
use crate::pkce;
use crate::tokens::same_hash;

/// Most live token families per account; issuing more revokes the oldest.
pub const MAX_LIVE_FAMILIES: usize = 50;
const MAX_RETIRED_REFRESH: usize = 20;

/// A new authorization code (its hash) to issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewCode {
    pub hash: String,
    pub code_challenge: Option<String>,
}

/// A new token pair (their hashes) to issue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewFamily {
    pub id: String,
    pub access_hash: String,
    pub refresh_hash: String,
}

pub(super) fn add_grant(
    d: &mut Draft,
    id: &str,
    orchestrator: Orchestrator,
    scopes: Vec<String>,
    via: &str,
    consent: Option<String>,
) {
    d.account.grants.push(Grant {
        id: id.to_string(),
        orchestrator: orchestrator.clone(),
        scopes: scopes.clone(),
        created_at: d.now(),
        via: via.to_string(),
        revoked_at: None,
    });
    d.record(
        AuditAction::GrantCreated,
        consent,
        Value::Null,
        json!({"grant_id": id, "orchestrator": orchestrator, "scopes": scopes, "via": via}),
    );
}

pub(super) fn add_code(d: &mut Draft, grant_id: &str, request_id: &str, code: NewCode) {
    let expires_at = d.now() + d.policy().code_ttl;
    d.account.codes.push(AuthCode {
        hash: code.hash,
        grant_id: grant_id.to_string(),
        request_id: request_id.to_string(),
        code_challenge: code.code_challenge.clone(),
        issued_at: d.now(),
        expires_at,
        used_at: None,
        family_id: None,
    });
    d.record(
        AuditAction::CodeIssued,
        Some(format!("grant:{grant_id}")),
        Value::Null,
        json!({"grant_id": grant_id, "account_request": request_id,
               "pkce": code.code_challenge.is_some(), "expires_at": expires_at}),
    );
}

/// State of a code, for idempotent replays of an account request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CodeStatus {
    Unused,
    Used,
    Expired,
    Unknown,
}

pub fn code_status(a: &Account, code_hash: &str, now: i64) -> CodeStatus {
    match a.codes.iter().find(|c| same_hash(&c.hash, code_hash)) {
        None => CodeStatus::Unknown,
        Some(c) if c.used_at.is_some() => CodeStatus::Used,
        Some(c) if c.expires_at <= now => CodeStatus::Expired,
        Some(_) => CodeStatus::Unused,
    }
}

/// What a successful token exchange or refresh grants.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issued {
    pub account_id: String,
    pub scopes: Vec<String>,
    pub expires_in: i64,
}

fn revoke_family(d: &mut Draft, index: usize, reason: &str) {
    let now = d.now();
    let family = &mut d.account.families[index];
    if family.revoked_at.is_some() {
        return;
    }
    family.revoked_at = Some(now);
    family.revoked_reason = Some(reason.to_string());
    let (id, grant) = (family.id.clone(), family.grant_id.clone());
    d.record(
        AuditAction::TokenRevoked,
        Some(format!("grant:{grant}")),
        json!({"family_id": id, "revoked": false}),
        json!({"family_id": id, "revoked": true, "reason": reason}),
    );
}

fn issue_family(
    d: &mut Draft,
    grant_id: &str,
    public_client: bool,
    new: NewFamily,
) -> Result<Issued, AccountError> {
    let scopes = d
        .account
        .grants
        .iter()
        .find(|g| g.id == grant_id && g.revoked_at.is_none())
        .map(|g| g.scopes.clone())
        .ok_or_else(|| grant_err("the grant behind this code was revoked"))?;
    // Bound the live families: the oldest live one makes room.
    let live: Vec<usize> = (0..d.account.families.len())
        .filter(|&i| d.account.families[i].revoked_at.is_none())
        .collect();
    if live.len() >= MAX_LIVE_FAMILIES {
        revoke_family(d, live[0], "too_many_tokens");
    }
    let p = d.policy();
    let now = d.now();
    d.account.families.push(TokenFamily {
        id: new.id.clone(),
        grant_id: grant_id.to_string(),
        public_client,
        access_hash: new.access_hash,
        access_expires_at: now + p.access_ttl,
        refresh_hash: new.refresh_hash,
        refresh_expires_at: now + p.refresh_ttl,
        retired_refresh: Vec::new(),
        generation: 1,
        created_at: now,
        revoked_at: None,
        revoked_reason: None,
    });
    d.record(
        AuditAction::TokenIssued,
        Some(format!("grant:{grant_id}")),
        Value::Null,
        json!({"family_id": new.id, "generation": 1, "scopes": scopes,
               "public_client": public_client, "access_expires_at": now + p.access_ttl}),
    );
    Ok(Issued {
        account_id: d.account.id.clone(),
        scopes,
        expires_in: p.access_ttl,
    })
}

/// `grant_type=authorization_code`. `signed` is true when the orchestrator's signature was
/// verified on the request.
pub fn exchange_code(
    d: &mut Draft,
    code_hash: &str,
    verifier: Option<&str>,
    signed: bool,
    new: NewFamily,
) -> Result<Issued, AccountError> {
    d.require_active()?;
    let now = d.now();
    let index = d
        .account
        .codes
        .iter()
        .position(|c| same_hash(&c.hash, code_hash))
        .ok_or_else(|| grant_err("the authorization code is not valid"))?;
    let code = d.account.codes[index].clone();
    if code.used_at.is_some() {
        // RFC 6749 §4.1.2: a second use fails and revokes what the first use issued.
        d.keep_on_error();
        d.record(
            AuditAction::CodeReused,
            Some(format!("grant:{}", code.grant_id)),
            Value::Null,
            json!({"grant_id": code.grant_id, "family_id": code.family_id}),
        );
        if let Some(fid) = &code.family_id {
            if let Some(fi) = d.account.families.iter().position(|f| &f.id == fid) {
                revoke_family(d, fi, "code_reused");
            }
        }
        return Err(grant_err("the authorization code was already used"));
    }
    if code.expires_at <= now {
        return Err(grant_err("the authorization code has expired"));
    }
    match (&code.code_challenge, verifier) {
        (Some(challenge), Some(v)) => {
            if !pkce::verify(challenge, v) {
                return Err(grant_err("code_verifier does not match the code_challenge"));
            }
        }
        (Some(_), None) => return Err(grant_err("code_verifier is required for this code")),
        (None, Some(_)) => {
            return Err(grant_err(
                "code_verifier was sent but this code has no code_challenge",
            ))
        }
        (None, None) if !signed => {
            return Err(AccountError::InvalidClient {
                reason: "sign the request, or use PKCE".into(),
            })
        }
        (None, None) => {}
    }
    let family_id = new.id.clone();
    let issued = issue_family(d, &code.grant_id, !signed, new)?;
    let c = &mut d.account.codes[index];
    c.used_at = Some(now);
    c.family_id = Some(family_id);
    Ok(issued)
}

/// `grant_type=refresh_token`, with rotation: the presented token stops working.
pub fn refresh(
    d: &mut Draft,
    refresh_hash: &str,
    signed: bool,
    new_access_hash: String,
    new_refresh_hash: String,
) -> Result<Issued, AccountError> {
    d.require_active()?;
    let now = d.now();
    let current = d
        .account
        .families
        .iter()
        .position(|f| f.revoked_at.is_none() && same_hash(&f.refresh_hash, refresh_hash));
    let Some(index) = current else {
        let reused = d
            .account
            .families
            .iter()
            .position(|f| f.retired_refresh.iter().any(|h| same_hash(h, refresh_hash)));
        if let Some(index) = reused {
            // A rotated-out refresh token came back: someone kept a copy. Revoke the family.
            d.keep_on_error();
            let fid = d.account.families[index].id.clone();
            d.record(
                AuditAction::TokenRefreshReused,
                None,
                Value::Null,
                json!({"family_id": fid}),
            );
            revoke_family(d, index, "refresh_token_reused");
            return Err(grant_err(
                "the refresh token was already used; sign in again",
            ));
        }
        return Err(grant_err("the refresh token is not valid"));
    };
    let f = &d.account.families[index];
    if f.refresh_expires_at <= now {
        return Err(grant_err("the refresh token has expired"));
    }
    if !f.public_client && !signed && d.policy().refresh_requires_signature {
        return Err(AccountError::InvalidClient {
            reason: "this refresh token was issued to the signed orchestrator client: sign the \
                     refresh with the orchestrator's Stripe-Signature header, as for the code \
                     exchange (this provider sets REFRESH_REQUIRES_SIGNATURE)"
                .into(),
        });
    }
    let grant_id = f.grant_id.clone();
    let scopes = d
        .account
        .grants
        .iter()
        .find(|g| g.id == grant_id && g.revoked_at.is_none())
        .map(|g| g.scopes.clone())
        .ok_or_else(|| grant_err("the grant behind this token was revoked"))?;
    let p = d.policy();
    let f = &mut d.account.families[index];
    let old = std::mem::replace(&mut f.refresh_hash, new_refresh_hash);
    f.retired_refresh.push(old);
    if f.retired_refresh.len() > MAX_RETIRED_REFRESH {
        f.retired_refresh.remove(0);
    }
    f.access_hash = new_access_hash;
    f.access_expires_at = now + p.access_ttl;
    f.refresh_expires_at = now + p.refresh_ttl;
    f.generation += 1;
    let (fid, generation) = (f.id.clone(), f.generation);
    d.record(
        AuditAction::TokenRefreshed,
        Some(format!("grant:{grant_id}")),
        json!({"family_id": fid, "generation": generation - 1}),
        json!({"family_id": fid, "generation": generation, "access_expires_at": now + p.access_ttl}),
    );
    Ok(Issued {
        account_id: d.account.id.clone(),
        scopes,
        expires_in: p.access_ttl,
    })
}

/// What a valid access token allows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    pub account_id: String,
    pub family_id: String,
    pub grant_id: String,
    pub scopes: Vec<String>,
    pub orchestrator_account: String,
    pub expires_at: i64,
}

/// Checks a bearer access token (read-only).
pub fn authenticate(a: &Account, access_hash: &str, now: i64) -> Result<Access, AccountError> {
    // The token first: an unknown token learns nothing about the account's status.
    let known = a
        .families
        .iter()
        .any(|f| same_hash(&f.access_hash, access_hash));
    if !known {
        return Err(AccountError::InvalidToken);
    }
    if !a.is_open() {
        return Err(a.refusal());
    }
    let f = a
        .families
        .iter()
        .find(|f| f.revoked_at.is_none() && same_hash(&f.access_hash, access_hash))
        .filter(|f| f.access_expires_at > now)
        .ok_or(AccountError::InvalidToken)?;
    let g = a
        .grants
        .iter()
        .find(|g| g.id == f.grant_id && g.revoked_at.is_none())
        .ok_or(AccountError::InvalidToken)?;
    Ok(Access {
        account_id: a.id.clone(),
        family_id: f.id.clone(),
        grant_id: g.id.clone(),
        scopes: g.scopes.clone(),
        orchestrator_account: g.orchestrator.account.clone(),
        expires_at: f.access_expires_at,
    })
}

/// RFC 7662 view of a token (read-only). Inactive accounts' tokens are inactive.
pub fn introspect(a: &Account, token_hash: &str, now: i64) -> Value {
    let inactive = json!({"active": false});
    if !a.is_open() {
        return inactive;
    }
    for f in a.families.iter().filter(|f| f.revoked_at.is_none()) {
        let (kind, exp) = if same_hash(&f.access_hash, token_hash) {
            ("access_token", f.access_expires_at)
        } else if same_hash(&f.refresh_hash, token_hash) {
            ("refresh_token", f.refresh_expires_at)
        } else {
            continue;
        };
        if exp <= now {
            return inactive;
        }
        let Some(g) = a
            .grants
            .iter()
            .find(|g| g.id == f.grant_id && g.revoked_at.is_none())
        else {
            return inactive;
        };
        return json!({
            "active": true, "token_type": kind, "scope": g.scopes.join(" "),
            "client_id": g.orchestrator.account, "sub": a.id, "exp": exp, "iat": f.created_at,
            "username": a.owner.email,
        });
    }
    inactive
}

/// RFC 7009: revokes the pair that `token_hash` belongs to. Unknown tokens change nothing.
pub fn revoke_token(d: &mut Draft, token_hash: &str) -> Result<bool, AccountError> {
    let index = d.account.families.iter().position(|f| {
        f.revoked_at.is_none()
            && (same_hash(&f.access_hash, token_hash) || same_hash(&f.refresh_hash, token_hash))
    });
    match index {
        Some(i) => {
            revoke_family(d, i, "revoked_by_client");
            Ok(true)
        }
        None => Ok(false),
    }
}

/// Revokes every live token family and grant (closing, closed).
pub fn revoke_everything(d: &mut Draft, reason: &str) {
    let live: Vec<usize> = (0..d.account.families.len())
        .filter(|&i| d.account.families[i].revoked_at.is_none())
        .collect();
    for i in live {
        revoke_family(d, i, reason);
    }
    let now = d.now();
    let mut revoked = Vec::new();
    for g in d
        .account
        .grants
        .iter_mut()
        .filter(|g| g.revoked_at.is_none())
    {
        g.revoked_at = Some(now);
        revoked.push(g.id.clone());
    }
    if !revoked.is_empty() {
        d.record(
            AuditAction::GrantRevoked,
            None,
            Value::Null,
            json!({"grant_ids": revoked, "reason": reason}),
        );
    }
}

/// The orchestrator account behind the code or refresh token presented (a rotated-out refresh
/// token counts), so that token records name who asked. `None` when the token is unknown.
pub fn token_requester(
    a: &Account,
    code_hash: Option<&str>,
    refresh_hash: Option<&str>,
) -> Option<String> {
    let grant_id = match (code_hash, refresh_hash) {
        (Some(h), _) => a
            .codes
            .iter()
            .find(|c| same_hash(&c.hash, h))
            .map(|c| &c.grant_id),
        (None, Some(h)) => a
            .families
            .iter()
            .find(|f| {
                same_hash(&f.refresh_hash, h) || f.retired_refresh.iter().any(|r| same_hash(r, h))
            })
            .map(|f| &f.grant_id),
        (None, None) => None,
    }?;
    a.grants
        .iter()
        .find(|g| &g.id == grant_id)
        .map(|g| g.orchestrator.account.clone())
}
