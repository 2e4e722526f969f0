//! The kinds of external work a resource's job does, one file each behind [`work::Work`], which
//! the saga engine (`resources::saga`) drives:
//! - `subscribe`: start a paid plan (token, customer, first period, subscription, then cancel
//!   the subscription it replaces);
//! - `cancel`: leave a paid plan (`Unsubscribe`), and retry cancelling replaced subscriptions;
//! - `buy_domain`: token, claim (builtin registrar) or charge, register;
//! - `release_domain`: let a name go;
//! - `refund`: give back a charge whose purchase could not be completed;
//! - `operator`: call the operator's backend until it is done;
//! - `purchase`: charge a paid operator service's one-time price, then its backend creates it;
//! - `metered`: subscribe a usage-based operator service (nothing charged now), then its
//!   backend creates it.
//!
//! `payment` holds the steps purchases share. Adding a kind of work means one file here, one
//! [`Job`] variant, and its arm in [`work_of`].

pub mod buy_domain;
pub mod cancel;
pub mod metered;
pub mod operator;
pub mod payment;
pub mod purchase;
pub mod refund;
pub mod release_domain;
pub mod subscribe;
pub mod work;

use crate::resources::jobs::buy_domain::BuyDomain;
use crate::resources::jobs::cancel::Unsubscribe;
use crate::resources::jobs::metered::StartMetered;
use crate::resources::jobs::operator::Operator;
use crate::resources::jobs::purchase::Purchase;
use crate::resources::jobs::refund::Refund;
use crate::resources::jobs::release_domain::ReleaseDomain;
use crate::resources::jobs::subscribe::Subscribe;
use crate::resources::jobs::work::Work;
use crate::resources::model::Job;

/// The kind of work `job` does.
pub(crate) fn work_of(job: &Job) -> &'static dyn Work {
    match job {
        Job::Subscribe { .. } => &Subscribe,
        Job::Unsubscribe { .. } => &Unsubscribe,
        Job::BuyDomain { .. } => &BuyDomain,
        Job::ReleaseDomain { .. } => &ReleaseDomain,
        Job::Refund { .. } => &Refund,
        Job::Operator { .. } => &Operator,
        Job::Purchase { .. } => &Purchase,
        Job::StartMetered { .. } => &StartMetered,
    }
}
