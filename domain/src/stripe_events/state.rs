//! What an account remembers of Stripe (stored in the account state, docs/STORAGE.md): the
//! registers the webhooks write. Plain data with its serde shape; it imports no account logic,
//! so the account model can hold it without depending on how events are applied.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The order of events: later `created` wins; within one second, the rank of the event (a
/// deletion outranks an update outranks a creation; a paid invoice outranks a failed one); then
/// the id, so the order is total and the same whatever the arrival order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct EventKey {
    pub created: i64,
    pub rank: u8,
    pub id: String,
}

/// What an account remembers of Stripe.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StripeState {
    /// Applied event ids and when they were applied, as states written before the ids moved
    /// to the account object's `stripe_events` table kept them. Read only to move them there;
    /// never written again.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub processed: BTreeMap<String, i64>,
    /// Latest subscription status per subscription, with the key of the event that set it.
    pub subscriptions: BTreeMap<String, (EventKey, String)>,
    /// Whether the latest invoice of each subscription failed, with its event key.
    pub invoices: BTreeMap<String, (EventKey, bool)>,
}
