//! The audit trail's action names: one enum, so a record's `action` is never a typo, and
//! docs/STORAGE.md's list of actions is checked against it (`the_storage_doc_lists_every_action`).
//!
//! Stored records keep the action as its string (`AuditRecord::action`), so adding a variant
//! never changes a stored shape; renaming one would (old records keep the old name): don't.

macro_rules! audit_actions {
    ($($variant:ident => $name:literal,)*) => {
        /// What a change did, as recorded in `audit_events.action`.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum AuditAction {
            $($variant,)*
        }

        impl AuditAction {
            /// Every action, in the order of docs/STORAGE.md.
            pub const ALL: &'static [AuditAction] = &[$(AuditAction::$variant,)*];

            /// The stored name (`resource.created`, ...).
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(AuditAction::$variant => $name,)*
                }
            }

            /// The action a stored name stands for, if it is one of ours.
            pub fn from_name(name: &str) -> Option<AuditAction> {
                match name {
                    $($name => Some(AuditAction::$variant),)*
                    _ => None,
                }
            }
        }
    };
}

audit_actions! {
    // Resources.
    ResourceCreated => "resource.created",
    ResourcePending => "resource.pending",
    ResourceCompleted => "resource.completed",
    ResourceUpdateRequested => "resource.update_requested",
    ResourceUpdated => "resource.updated",
    ResourceRotateRequested => "resource.rotate_requested",
    ResourceRotated => "resource.rotated",
    ResourceRemoveRequested => "resource.remove_requested",
    ResourceRemoved => "resource.removed",
    ResourceFailed => "resource.failed",
    ResourceLinkRequested => "resource.link_requested",
    ResourceLinked => "resource.linked",
    ResourceInformationRequested => "resource.information_requested",
    ResourceInformationSubmitted => "resource.information_submitted",
    ResourcePaused => "resource.paused",
    ResourceUnpaused => "resource.unpaused",
    ResourceSuspended => "resource.suspended",
    ResourceResumed => "resource.resumed",
    ResourcePastDue => "resource.past_due",
    ResourcePaid => "resource.paid",
    UsageRecorded => "usage.recorded",
    UsageBilled => "usage.billed",
    UsageBillingFailed => "usage.billing_failed",
    CreditGranted => "credit.granted",
    CreditSynced => "credit.synced",
    CreditSyncFailed => "credit.sync_failed",
    JobRetryScheduled => "job.retry_scheduled",
    JobFailed => "job.failed",
    PaymentTokenVerified => "payment.token_verified",
    BillingCustomerCreated => "billing.customer_created",
    PaymentMethodSaved => "payment.method_saved",
    ChargeSucceeded => "charge.succeeded",
    ChargeRefunded => "charge.refunded",
    SubscriptionStarted => "subscription.started",
    SubscriptionCanceled => "subscription.canceled",
    SubscriptionCancelFailed => "subscription.cancel_failed",
    SubscriptionCancelRetryScheduled => "subscription.cancel_retry_scheduled",
    DomainConfirmed => "domain.confirmed",
    DomainRegistered => "domain.registered",
    DomainReleased => "domain.released",
    QuoteRefreshed => "quote.refreshed",
    SpendReserved => "spend.reserved",
    SpendReleased => "spend.released",
    SpendCurrencySet => "spend.currency_set",
    SpendAlert => "spend.alert",
    SpendCapChanged => "spend.cap_changed",
    DeepLinkCreated => "deep_link.created",
    DashboardOpened => "dashboard.opened",
    DashboardSignedIn => "dashboard.signed_in",
    DashboardSignInRefused => "dashboard.sign_in_refused",
    AccountClosing => "account.closing",
    // Stripe.
    StripeEvent => "stripe.event",
    SubscriptionStatus => "subscription.status",
    PlanPastDue => "plan.past_due",
    PlanPaid => "plan.paid",
    PlanSuspended => "plan.suspended",
    PlanResumed => "plan.resumed",
    ChargeDisputed => "charge.disputed",
    // Accounts.
    AccountCreated => "account.created",
    GrantCreated => "grant.created",
    CodeIssued => "code.issued",
    TokenIssued => "token.issued",
    TokenRefreshed => "token.refreshed",
    TokenRevoked => "token.revoked",
    CodeReused => "code.reused",
    TokenRefreshReused => "token.refresh_reused",
    ConsentRequested => "consent.requested",
    ConsentSignedIn => "consent.signed_in",
    ConsentSignInRefused => "consent.sign_in_refused",
    ConsentApproved => "consent.approved",
    ConsentDenied => "consent.denied",
    AccountSuspended => "account.suspended",
    AccountResumed => "account.resumed",
    AccountClosed => "account.closed",
    GrantRevoked => "grant.revoked",
}

impl std::fmt::Display for AuditAction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_round_trip() {
        let mut seen = std::collections::HashSet::new();
        for a in AuditAction::ALL {
            assert!(seen.insert(a.as_str()), "{a} twice");
            assert_eq!(AuditAction::from_name(a.as_str()), Some(*a));
        }
        assert_eq!(AuditAction::from_name("resource.creatd"), None);
    }

    /// docs/STORAGE.md's `action` row names exactly the actions of the enum, in its order.
    #[test]
    fn the_storage_doc_lists_every_action() {
        let doc = include_str!("../../docs/STORAGE.md");
        let row = doc
            .lines()
            .find(|l| l.starts_with("| `action` |"))
            .expect("docs/STORAGE.md has an `action` row in the audit_events table");
        let listed: Vec<&str> = row
            .split('`')
            .skip(3) // "| ", "action", " | resources: "
            .step_by(2)
            .collect();
        let ours: Vec<&str> = AuditAction::ALL.iter().map(|a| a.as_str()).collect();
        assert_eq!(
            listed, ours,
            "docs/STORAGE.md's action list and AuditAction::ALL differ"
        );
    }
}
