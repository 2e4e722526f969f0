//! Audit records and the per-account hash chain.
//!
//! Every state change of an account produces records in the same step as the change (the
//! account object's outbox), numbered by `seq` from 1 without gaps. Each record carries the hash
//! of the previous one, so an account's history is a verifiable chain:
//!
//! ```text
//! hash = lowercase hex SHA-256( canonical JSON of every field except "hash" )
//! ```
//!
//! where canonical JSON is the compact encoding with object keys sorted by byte order, numbers as
//! integers, and strings escaped as JSON requires (the same bytes as Python's
//! `json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)`). The first
//! record's `prev_hash` is 64 zeros. See docs/AUDIT.md.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

pub use crate::audit_action::AuditAction;
use crate::crypto::sha256_hex;

/// `prev_hash` of an account's first record.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Who did it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// The orchestrator, through a signed call (acting for the agent and the human).
    Orchestrator,
    /// The account owner, signed in on a page of ours.
    Owner,
    /// The platform operator, through the operator API.
    Operator,
    /// Stripe, through a verified webhook.
    Stripe,
    /// The worker itself (expiry, retries, alarms).
    System,
}

impl ActorKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ActorKind::Orchestrator => "orchestrator",
            ActorKind::Owner => "owner",
            ActorKind::Operator => "operator",
            ActorKind::Stripe => "stripe",
            ActorKind::System => "system",
        }
    }
}

/// How the owner proved it was them, for the owner's actions (the other actors have one way
/// each: the orchestrator's signature and bearer, the operator secret, Stripe's signature).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Authentication {
    /// Only a dashboard deep link, which the agent can mint: enough to view and to lower the
    /// cap, never to spend or to widen what the agent may do.
    DeepLink,
    /// Only a consent link (handed out to the orchestrator), before the owner signed in.
    ConsentLink,
    /// The owner signed in (the operator's assertion, or the development form).
    OwnerSignIn,
}

impl Authentication {
    pub fn as_str(self) -> &'static str {
        match self {
            Authentication::DeepLink => "deep_link",
            Authentication::ConsentLink => "consent_link",
            Authentication::OwnerSignIn => "owner_sign_in",
        }
    }
}

/// The actor of a change and its identity (the orchestrator's Stripe account, the event id...).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Actor {
    pub kind: ActorKind,
    pub id: Option<String>,
    /// How the owner authenticated (owner actions only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<Authentication>,
}

impl Actor {
    pub fn new(kind: ActorKind, id: Option<&str>) -> Self {
        Actor {
            kind,
            id: id.map(str::to_string),
            authentication: None,
        }
    }

    /// The owner, authenticated by `how`.
    pub fn owner(how: Authentication) -> Self {
        Actor {
            authentication: Some(how),
            ..Actor::new(ActorKind::Owner, None)
        }
    }
}

/// One audit record, as stored in the outbox and in D1 (`audit_events`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    pub account_id: String,
    pub seq: u64,
    pub at: i64,
    pub actor: ActorKind,
    pub actor_id: Option<String>,
    /// Whose authority the change was made under (the owner's email).
    pub on_behalf_of: Option<String>,
    pub action: String,
    pub request_id: Option<String>,
    /// Which consent authorised it: `tos:<version>`, `grant:<id>`, `consent:<id>`...
    pub consent: Option<String>,
    /// How the owner authenticated ([`Authentication::as_str`]); owner actions only. Records
    /// from before this field have none, and it is hashed only when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authentication: Option<String>,
    pub before: Value,
    pub after: Value,
    pub prev_hash: String,
    pub hash: String,
}

/// Where an account's chain stands: the next sequence number and the last hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    pub next_seq: u64,
    pub last_hash: String,
}

impl Default for ChainHead {
    fn default() -> Self {
        ChainHead {
            next_seq: 1,
            last_hash: GENESIS_HASH.to_string(),
        }
    }
}

/// The fields of a record before it is placed in the chain.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub at: i64,
    pub actor: Actor,
    pub on_behalf_of: Option<String>,
    pub action: AuditAction,
    pub request_id: Option<String>,
    pub consent: Option<String>,
    pub before: Value,
    pub after: Value,
}

/// The canonical bytes a record's hash covers (every field but `hash`).
pub fn canonical(record: &AuditRecord) -> Vec<u8> {
    // serde_json's Map is ordered by key, so this is the sorted, compact encoding.
    let mut fields = json!({
        "account_id": record.account_id,
        "seq": record.seq,
        "at": record.at,
        "actor": record.actor.as_str(),
        "actor_id": record.actor_id,
        "on_behalf_of": record.on_behalf_of,
        "action": record.action,
        "request_id": record.request_id,
        "consent": record.consent,
        "before": record.before,
        "after": record.after,
        "prev_hash": record.prev_hash,
    });
    // Only when present, so records sealed before the field existed keep their hashes.
    if let (Some(a), Some(map)) = (&record.authentication, fields.as_object_mut()) {
        map.insert("authentication".into(), Value::String(a.clone()));
    }
    fields.to_string().into_bytes()
}

/// Appends `entry` to the chain at `head`, returning the sealed record and advancing `head`.
pub fn seal(account_id: &str, head: &mut ChainHead, entry: Entry) -> AuditRecord {
    let mut record = AuditRecord {
        account_id: account_id.to_string(),
        seq: head.next_seq,
        at: entry.at,
        actor: entry.actor.kind,
        actor_id: entry.actor.id,
        on_behalf_of: entry.on_behalf_of,
        action: entry.action.as_str().to_string(),
        request_id: entry.request_id,
        consent: entry.consent,
        authentication: entry.actor.authentication.map(|a| a.as_str().to_string()),
        before: entry.before,
        after: entry.after,
        prev_hash: head.last_hash.clone(),
        hash: String::new(),
    };
    record.hash = sha256_hex(&canonical(&record));
    head.next_seq += 1;
    head.last_hash = record.hash.clone();
    record
}

/// Where a chain breaks, if it does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainBreak {
    pub seq: u64,
    pub reason: &'static str,
}

/// Verifies records of one account, in `seq` order from the first: sequence without gaps, each
/// `prev_hash` equal to the previous `hash`, each `hash` recomputed from the content.
pub fn verify_chain(records: &[AuditRecord]) -> Result<(), ChainBreak> {
    let mut expected_prev = GENESIS_HASH.to_string();
    for (expected_seq, r) in (1u64..).zip(records) {
        if r.seq != expected_seq {
            return Err(ChainBreak {
                seq: r.seq,
                reason: "sequence gap or reorder",
            });
        }
        if r.prev_hash != expected_prev {
            return Err(ChainBreak {
                seq: r.seq,
                reason: "prev_hash does not match the previous record",
            });
        }
        if sha256_hex(&canonical(r)) != r.hash {
            return Err(ChainBreak {
                seq: r.seq,
                reason: "content does not match its hash",
            });
        }
        expected_prev = r.hash.clone();
    }
    Ok(())
}

/// The account status an action leaves in the operator's account list (D1 `accounts`), for
/// the actions that change it (`account.created` adds the row instead).
pub fn account_status_after(action: &str) -> Option<&'static str> {
    match AuditAction::from_name(action)? {
        AuditAction::AccountSuspended => Some("suspended"),
        AuditAction::AccountResumed => Some("active"),
        AuditAction::AccountClosing => Some("closing"),
        AuditAction::AccountClosed => Some("closed"),
        _ => None,
    }
}
/// Fields of a record's `after` that name a Stripe object of the account (D1 `stripe_objects`,
/// which routes webhooks that lack our metadata).
pub const STRIPE_ID_FIELDS: [&str; 2] = ["customer", "subscription_id"];

/// True when other requests read this record's D1 rows (the account list, webhook routing), so
/// it must reach D1 right after its change instead of waiting to be batched with others.
pub fn needed_at_once(r: &AuditRecord) -> bool {
    r.action == AuditAction::AccountCreated.as_str()
        || account_status_after(&r.action).is_some()
        || STRIPE_ID_FIELDS
            .iter()
            .any(|k| r.after.get(*k).is_some_and(Value::is_string))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(action: AuditAction, at: i64) -> Entry {
        Entry {
            at,
            actor: Actor::new(ActorKind::Orchestrator, Some("acct_1")),
            on_behalf_of: Some("dev@example.com".into()),
            action,
            request_id: Some("req_1".into()),
            consent: Some("tos:2026-11-01".into()),
            before: Value::Null,
            after: json!({"status": "active"}),
        }
    }

    #[test]
    fn records_other_requests_read_go_at_once() {
        let mut head = ChainHead::default();
        let mut sealed = |action: AuditAction, after: Value| {
            let mut e = entry(action, 10);
            e.after = after;
            seal("acct_x", &mut head, e)
        };
        let at_once = [
            sealed(AuditAction::AccountCreated, json!({"status": "active"})),
            sealed(
                AuditAction::AccountSuspended,
                json!({"status": "suspended"}),
            ),
            sealed(
                AuditAction::BillingCustomerCreated,
                json!({"customer": "cus_1"}),
            ),
            sealed(
                AuditAction::ResourceCompleted,
                json!({"resource_id": "res_1", "subscription_id": "sub_1"}),
            ),
        ];
        let batched = [
            sealed(AuditAction::TokenRefreshed, json!({"family": "fam_1"})),
            sealed(
                AuditAction::StripeEvent,
                json!({"event_id": "evt_1", "type": "invoice.paid"}),
            ),
            sealed(
                AuditAction::ResourceCompleted,
                json!({"resource_id": "res_2"}),
            ),
            sealed(
                AuditAction::ResourceUpdated,
                json!({"subscription_id": null}),
            ),
        ];
        assert!(at_once.iter().all(needed_at_once));
        assert!(!batched.iter().any(needed_at_once));
    }

    #[test]
    fn chain_links_and_verifies() {
        let mut head = ChainHead::default();
        let a = seal("acct_x", &mut head, entry(AuditAction::AccountCreated, 10));
        let b = seal("acct_x", &mut head, entry(AuditAction::TokenIssued, 11));
        assert_eq!((a.seq, b.seq), (1, 2));
        assert_eq!(a.prev_hash, GENESIS_HASH);
        assert_eq!(b.prev_hash, a.hash);
        assert_eq!(head.last_hash, b.hash);
        assert_eq!(verify_chain(&[a.clone(), b.clone()]), Ok(()));

        let mut tampered = b.clone();
        tampered.after = json!({"status": "closed"});
        assert_eq!(verify_chain(&[a.clone(), tampered]).unwrap_err().seq, 2);
        assert_eq!(verify_chain(std::slice::from_ref(&b)).unwrap_err().seq, 2);
        assert_eq!(verify_chain(&[b, a]).unwrap_err().seq, 2);
    }

    #[test]
    fn canonical_encoding_is_sorted_and_compact() {
        let mut head = ChainHead::default();
        let r = seal("acct_x", &mut head, entry(AuditAction::AccountCreated, 10));
        let text = String::from_utf8(canonical(&r)).unwrap();
        assert!(text.starts_with(r#"{"account_id":"acct_x","action":"account.created","actor":"orchestrator","actor_id":"acct_1","after":{"status":"active"},"at":10,"before":null,"consent":"tos:2026-11-01""#), "{text}");
        assert!(!text.contains(' '));
        assert!(!text.contains("\"hash\""));
    }

    #[test]
    fn matches_python_json_dumps() {
        // python3 -c 'import json,hashlib; r={"account_id":"acct_x","seq":1,"at":10,
        //   "actor":"orchestrator","actor_id":"acct_1","on_behalf_of":"dev@example.com",
        //   "action":"account.created","request_id":"req_1","consent":"tos:2026-11-01",
        //   "before":None,"after":{"status":"active","é":"\n"},"prev_hash":"0"*64};
        //   print(hashlib.sha256(json.dumps(r,sort_keys=True,separators=(",",":"),
        //   ensure_ascii=False).encode()).hexdigest())'
        let mut head = ChainHead::default();
        let mut e = entry(AuditAction::AccountCreated, 10);
        e.after = json!({"status": "active", "é": "\n"});
        let r = seal("acct_x", &mut head, e);
        assert_eq!(r.hash, PYTHON_HASH);
    }

    #[test]
    fn authentication_is_hashed_only_when_present() {
        // A record of the old shape (no `authentication` key) reads and keeps its hash.
        let mut head = ChainHead::default();
        let old = seal("acct_x", &mut head, entry(AuditAction::AccountCreated, 10));
        let mut json = serde_json::to_value(&old).unwrap();
        assert!(json.get("authentication").is_none(), "{json}");
        json.as_object_mut().unwrap().remove("authentication");
        let read: AuditRecord = serde_json::from_value(json).unwrap();
        assert_eq!(read.authentication, None);
        assert_eq!(verify_chain(&[read]), Ok(()));
        assert_eq!(old.hash, PYTHON_HASH_PLAIN);

        // An owner's record says how they authenticated, and the hash covers it.
        let mut e = entry(AuditAction::SpendCapChanged, 11);
        e.actor = Actor::owner(Authentication::OwnerSignIn);
        let signed = seal("acct_x", &mut head, e);
        assert_eq!(signed.authentication.as_deref(), Some("owner_sign_in"));
        let text = String::from_utf8(canonical(&signed)).unwrap();
        assert!(
            text.contains(r#""authentication":"owner_sign_in""#),
            "{text}"
        );
        let mut forged = signed.clone();
        forged.authentication = Some("deep_link".into());
        assert_eq!(verify_chain(&[old.clone(), forged]).unwrap_err().seq, 2);
        assert_eq!(verify_chain(&[old, signed]), Ok(()));
    }

    /// `entry(AuditAction::AccountCreated, 10)` sealed first (Python: as in `matches_python_json_dumps`,
    /// with `"after":{"status":"active"}`): unchanged by the `authentication` field.
    const PYTHON_HASH_PLAIN: &str =
        "265f429fd6435a2ee88a333efb01aa843e45277d9a5be7303056382c36ee3e7e";

    const PYTHON_HASH: &str = "a5d2b74bde09a300fa119c34244fe7db28ccd12be84fb716e2be20e2bf0e5800";
}
