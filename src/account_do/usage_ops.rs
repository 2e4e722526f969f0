//! The account object's usage reports (`POST /v1/usage`): recorded once with the cap's pause
//! in the same commit (`domain::usage::report`); the meter event and any `suspend` call are
//! the alarm's, which is armed for them before the answer.

use domain::account::{self, Account as AccountState, Ctx};
use domain::errors::Envelope;
use domain::resources::{Detail, Job};
use domain::usage::credits::{self, CreditGrant};
use domain::usage::{self, UsageError, UsageReport};

use crate::account_do::Account;
use crate::rpc::account::UsageAnswer;

fn refused(e: &UsageError) -> UsageAnswer {
    let f = e.failure();
    UsageAnswer {
        status: f.status,
        body: f.render(&Envelope::Plain),
    }
}

impl Account {
    pub(super) async fn grant_credits(
        &self,
        current: &AccountState,
        grant: CreditGrant,
        ctx: &Ctx,
    ) -> UsageAnswer {
        let applied = account::apply(current, ctx, |d| credits::grant(d, &grant));
        let (credit, replayed) = match self.commit(applied).await {
            Ok(done) => done,
            Err(e) => return refused(&e),
        };
        // The Stripe grant is the alarm's (once the account is a customer).
        self.reschedule().await;
        UsageAnswer {
            status: if replayed { 200 } else { 201 },
            body: credits::render(&credit, replayed, ctx.now),
        }
    }

    /// The cap changed: the pause follows the spend at once, and the `resume` (or `suspend`)
    /// calls it starts are driven now (what they cannot finish, the alarm does).
    pub(super) async fn after_cap_change(&self, ctx: &Ctx) {
        self.engine
            .continue_usage(ctx, || self.catalog().ok())
            .await;
        let Some(a) = self.load() else { return };
        let pausing = a.resources.iter().filter(|r| {
            matches!(&r.detail, Detail::Operator { usage: Some(_), .. })
                && r.job
                    .as_ref()
                    .is_some_and(|j| matches!(j.job, Job::Operator { .. }))
        });
        let ids: Vec<String> = pausing.map(|r| r.id.clone()).collect();
        for id in ids {
            let _ = self.drive(&id, ctx).await;
        }
        self.reschedule().await;
    }

    pub(super) async fn report_usage(
        &self,
        current: &AccountState,
        report: UsageReport,
        ctx: &Ctx,
    ) -> UsageAnswer {
        let Ok(catalog) = self.catalog() else {
            return refused(&UsageError::Account(account::AccountError::Unavailable));
        };
        let applied = account::apply(current, ctx, |d| usage::report(d, &report, catalog));
        let (record, replayed) = match self.commit(applied).await {
            Ok(done) => done,
            Err(e) => return refused(&e),
        };
        self.reschedule().await;
        let Some(a) = self.load() else {
            return refused(&UsageError::Account(account::AccountError::NotFound));
        };
        UsageAnswer {
            status: if replayed { 200 } else { 201 },
            body: usage::render(&a, &record, replayed, ctx.now),
        }
    }
}
