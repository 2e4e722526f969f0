use serde_json::{json, Value};

use crate::account::{Account, Draft};
use crate::catalog::Registrar;
use crate::resources::action::{Action, ActionResult};
use crate::resources::cancel::{apply_stale_outcome, stale_backoff, stale_due, stale_message};
use crate::resources::create::settled;
use crate::resources::error::{resource_error_info, ResourceError, REFUND_FAILED};
use crate::resources::lookup::{find, index};
use crate::resources::model::{
    Detail, ErrorInfo, Job, JobState, ResourceStatus, Settings, StaleSubscription,
};
use crate::resources::render::summary;
use crate::stripe_api::{self, PaymentError};
use crate::time::format_rfc3339;

/// The next external call for `id`, if its job has one due at `now`.
pub fn next_action(a: &Account, id: &str, now: i64) -> Option<Action> {
    let r = find(a, id).ok()?;
    // Idempotency keys: payments are keyed by their charge (unique per purchase), other steps
    // by what they act on, so a retry repeats the key and a new purchase never does.
    let key = |scope: &str, step: &str| format!("{}:{}:{scope}:{step}", a.id, r.id);
    let Some(js) = r.job.as_ref() else {
        // No job: a replaced subscription still to cancel, if one is due (same key as the
        // saga's cancel: the same DELETE).
        return stale_due(a, id, now).map(|s| Action::CancelSubscription {
            key: key(&s.subscription_id, "cancel"),
            subscription_id: s.subscription_id.clone(),
        });
    };
    if js.next_at > now {
        return None;
    }
    Some(match &js.job {
        Job::Subscribe {
            token,
            token_checked,
            payment_intent,
            payment_method,
            amount,
            currency,
            stripe_price,
            period_days,
            target_service,
            charge_id,
            replaces,
            subscription,
            ..
        } => {
            if !token_checked {
                Action::RetrieveToken {
                    token: token.clone(),
                }
            } else if a.billing.customer_id.is_none() {
                Action::CreateCustomer {
                    key: format!("{}:customer", a.id),
                    email: a.owner.email.clone(),
                    name: a.owner.name.clone(),
                }
            } else if payment_intent.is_none() {
                Action::CreatePaymentIntent {
                    key: key(charge_id, "subscribe-pi"),
                    amount: *amount,
                    currency: currency.clone(),
                    token: token.clone(),
                    customer: a.billing.customer_id.clone(),
                    save: true,
                    description: format!("{target_service} plan, first period"),
                }
            } else if let (Some(_), Some(old)) = (subscription, replaces) {
                // Same key as an Unsubscribe of that subscription: the same DELETE.
                Action::CancelSubscription {
                    key: key(old, "cancel"),
                    subscription_id: old.clone(),
                }
            } else {
                Action::CreateSubscription {
                    key: key(charge_id, "subscribe-sub"),
                    customer: a.billing.customer_id.clone().unwrap_or_default(),
                    price: stripe_price.clone(),
                    payment_method: payment_method.clone().unwrap_or_default(),
                    trial_end: js.started_at + period_days * 86_400,
                }
            }
        }
        Job::Unsubscribe {
            subscription_id, ..
        } => Action::CancelSubscription {
            key: key(subscription_id, "cancel"),
            subscription_id: subscription_id.clone(),
        },
        Job::BuyDomain {
            domain,
            amount,
            currency,
            token,
            token_checked,
            claimed,
            payment_intent,
            charge_id,
        } => {
            let registrar = r.registrar();
            // Builtin: hold the name before charging, so the money never pays for a name
            // someone else got in between. Upstream: charge, then register.
            let claim_first = registrar == Registrar::Builtin && !claimed;
            if !token_checked {
                Action::RetrieveToken {
                    token: token.clone(),
                }
            } else if payment_intent.is_none() && !claim_first {
                Action::CreatePaymentIntent {
                    key: key(charge_id, "domain-pi"),
                    amount: *amount,
                    currency: currency.clone(),
                    token: token.clone(),
                    customer: None,
                    save: false,
                    description: format!("Domain registration: {domain} (1 year)"),
                }
            } else {
                Action::ClaimDomain {
                    domain: domain.clone(),
                    registrar,
                    key: key(charge_id, "register"),
                    contact_email: a.owner.email.clone(),
                }
            }
        }
        Job::ReleaseDomain { domain, .. } => Action::ReleaseDomain {
            domain: domain.clone(),
            registrar: r.registrar(),
        },
        Job::Refund {
            payment_intent,
            amount,
            ..
        } => Action::Refund {
            key: key(payment_intent, "refund"),
            payment_intent: payment_intent.clone(),
            amount: *amount,
        },
        Job::Operator { action, url } => Action::CallOperator {
            key: key(&js.started_at.to_string(), &format!("operator-{action}")),
            url: url.clone(),
            body: json!({"action": action, "account_id": a.id, "resource_id": r.id,
                         "service_id": r.service_id, "project_id": r.project_id,
                         "configuration": r.configuration}),
        },
    })
}

/// Earliest time a job of this account wants to run (or a replaced subscription's
/// cancellation is retried).
pub fn next_wake(a: &Account) -> Option<i64> {
    let stale = a.billing.cancelling.iter().filter_map(|s| {
        let r = find(a, &s.resource_id).ok()?;
        // While the resource has a job, the retry waits for it (and the job's wake counts).
        r.job.is_none().then_some(s.next_at)
    });
    a.resources
        .iter()
        .filter_map(|r| r.job.as_ref().map(|j| j.next_at))
        .chain(stale)
        .min()
}

/// Ids of resources with a job (or a replaced subscription's cancellation) due at `now`.
pub fn due(a: &Account, now: i64) -> Vec<String> {
    a.resources
        .iter()
        .filter(|r| {
            r.job.as_ref().is_some_and(|j| j.next_at <= now)
                || (r.job.is_none() && stale_due(a, &r.id, now).is_some())
        })
        .map(|r| r.id.clone())
        .collect()
}

pub(crate) fn backoff(attempts: u32) -> i64 {
    (1i64 << attempts.min(8)).min(300)
}

/// Records the answer to the resource's current action. `Err` when the job failed for good
/// (the changes that say so are kept).
pub fn apply_outcome(
    d: &mut Draft,
    id: &str,
    outcome: ActionResult,
    settings: &Settings,
) -> Result<(), ResourceError> {
    let i = index(d, id)?;
    let now = d.now();
    let Some(mut js) = d.account.resources[i].job.clone() else {
        return apply_stale_outcome(d, i, outcome);
    };
    match outcome {
        ActionResult::Unavailable { message } => {
            js.attempts += 1;
            if js.attempts >= settings.max_attempts {
                return fail_job(
                    d,
                    i,
                    ResourceError::Backend {
                        code: "unavailable".into(),
                        message: format!("gave up after {} attempts: {message}", js.attempts),
                    },
                );
            }
            js.next_at = now + backoff(js.attempts);
            let attempts = js.attempts;
            d.account.resources[i].job = Some(js);
            d.account.resources[i].message = Some(format!(
                "waiting for a dependency (attempt {attempts}); retrying"
            ));
            d.record("job.retry_scheduled", None, Value::Null, json!({"resource_id": id, "attempt": attempts, "reason": crate::text::truncate(&message, 200)}));
            Ok(())
        }
        // Stripe refuses to refund what is already refunded (by a webhook-reported refund, or
        // from the dashboard): the compensation is done.
        ActionResult::Refused {
            error:
                ResourceError::Payment {
                    error: PaymentError::Failed { code, .. },
                },
        } if code == "charge_already_refunded" && matches!(js.job, Job::Refund { .. }) => {
            let refund = "already_refunded".to_string();
            advance(d, i, js, ActionResult::Refunded { id: refund }, settings)
        }
        ActionResult::Refused { error } => fail_job(d, i, error),
        outcome => advance(d, i, js, outcome, settings),
    }
}

pub(crate) fn advance(
    d: &mut Draft,
    i: usize,
    mut js: JobState,
    outcome: ActionResult,
    settings: &Settings,
) -> Result<(), ResourceError> {
    let now = d.now();
    let id = d.account.resources[i].id.clone();
    js.attempts = 0;
    js.next_at = now;
    match (&mut js.job, outcome) {
        (
            Job::Subscribe {
                token_checked,
                amount,
                currency,
                ..
            }
            | Job::BuyDomain {
                token_checked,
                amount,
                currency,
                ..
            },
            ActionResult::Token { token },
        ) => {
            if let Err(error) = stripe_api::check_token(&token, *amount, currency, now) {
                return fail_job(d, i, ResourceError::Payment { error });
            }
            *token_checked = true;
            let available = token.available();
            d.record(
                "payment.token_verified",
                None,
                Value::Null,
                json!({"resource_id": id, "currency": token.currency, "available": available, "expires_at": token.expires_at}),
            );
        }
        (Job::Subscribe { .. }, ActionResult::Customer { id: customer }) => {
            d.account.billing.customer_id = Some(customer.clone());
            d.record(
                "billing.customer_created",
                None,
                Value::Null,
                json!({"customer": customer}),
            );
        }
        (
            Job::Subscribe {
                payment_intent,
                payment_method,
                charge_id,
                amount,
                currency,
                ..
            },
            ActionResult::PaymentIntent {
                id: pi,
                payment_method: pm,
            },
        ) => {
            *payment_intent = Some(pi.clone());
            *payment_method = pm;
            settled(d, &id, charge_id, &pi, *amount, currency);
        }
        (
            Job::Subscribe {
                target_service,
                replaces,
                subscription,
                ..
            },
            ActionResult::Subscription { id: sub, status },
        ) => {
            let target = target_service.clone();
            // paid -> paid: the new plan is in place now; the old subscription is cancelled
            // next, in this job (the resource stays busy until it is).
            let old = replaces.clone();
            *subscription = Some(sub.clone());
            let before = summary(&d.account.resources[i]);
            let r = &mut d.account.resources[i];
            r.service_id = target;
            r.detail = Detail::Plan {
                subscription_id: Some(sub),
                subscription_status: Some(status),
                past_due_since: None,
                suspended: false,
            };
            r.status = ResourceStatus::Complete;
            r.job = None;
            r.message = None;
            r.error = None;
            r.updated_at = now;
            let after = summary(r);
            d.record("resource.completed", None, before, after);
            if let Some(old) = old {
                d.account.resources[i].message =
                    Some(format!("cancelling the previous subscription {old}"));
                d.account.resources[i].job = Some(js);
            }
            return Ok(());
        }
        (
            Job::Subscribe {
                replaces: Some(old),
                subscription: Some(_),
                ..
            },
            ActionResult::Canceled,
        ) => {
            let old = old.clone();
            let r = &mut d.account.resources[i];
            r.job = None;
            r.message = None;
            r.updated_at = now;
            let new = summary(r)["subscription_id"].clone();
            d.record(
                "subscription.canceled",
                None,
                Value::Null,
                json!({"subscription_id": old, "replaced_by": new}),
            );
            return Ok(());
        }
        (
            Job::Unsubscribe {
                target_service,
                subscription_id,
            },
            ActionResult::Canceled,
        ) => {
            let (target, sub) = (target_service.clone(), subscription_id.clone());
            let before = summary(&d.account.resources[i]);
            let message = stale_message(&d.account, &id);
            let r = &mut d.account.resources[i];
            r.job = None;
            r.message = message;
            r.updated_at = now;
            r.detail = Detail::Plan {
                subscription_id: None,
                subscription_status: Some("canceled".into()),
                past_due_since: None,
                suspended: false,
            };
            let action = match target {
                Some(t) => {
                    r.service_id = t;
                    r.status = ResourceStatus::Complete;
                    "resource.updated"
                }
                None => {
                    r.status = ResourceStatus::Removed;
                    "resource.removed"
                }
            };
            let after = summary(r);
            d.record(
                "subscription.canceled",
                None,
                Value::Null,
                json!({"subscription_id": sub}),
            );
            d.record(action, None, before, after);
            return Ok(());
        }
        (
            Job::BuyDomain {
                claimed,
                payment_intent,
                domain,
                ..
            },
            ActionResult::Claimed { expires_at },
        ) => {
            if payment_intent.is_some() {
                // Charged and registered: done.
                let name = domain.clone();
                let before = summary(&d.account.resources[i]);
                let r = &mut d.account.resources[i];
                if let Detail::Domain {
                    domain,
                    expires_at: e,
                    quote,
                    ..
                } = &mut r.detail
                {
                    *domain = Some(name.clone());
                    *e = Some(expires_at);
                    *quote = None;
                }
                r.status = ResourceStatus::Complete;
                r.job = None;
                r.message = None;
                r.updated_at = now;
                let after = summary(r);
                d.record(
                    "domain.registered",
                    None,
                    Value::Null,
                    json!({"domain": name, "expires_at": expires_at}),
                );
                d.record("resource.completed", None, before, after);
                return Ok(());
            }
            *claimed = true;
        }
        (
            Job::BuyDomain {
                payment_intent,
                charge_id,
                amount,
                currency,
                ..
            },
            ActionResult::PaymentIntent { id: pi, .. },
        ) => {
            *payment_intent = Some(pi.clone());
            settled(d, &id, charge_id, &pi, *amount, currency);
        }
        (
            Job::ReleaseDomain {
                domain,
                then_remove,
            },
            ActionResult::Released,
        ) => {
            let (name, then_remove) = (domain.clone(), *then_remove);
            let r = &mut d.account.resources[i];
            r.job = None;
            d.record(
                "domain.released",
                None,
                Value::Null,
                json!({"domain": name}),
            );
            if then_remove {
                d.account.resources[i].message = None;
                d.set_status(i, ResourceStatus::Removed, "resource.removed");
            }
            return Ok(());
        }
        (
            Job::Refund {
                charge_id,
                amount,
                reason,
                keep_current,
                ..
            },
            ActionResult::Refunded { id: refund },
        ) => {
            let (cid, amount, reason) = (charge_id.clone(), *amount, reason.clone());
            let keep_current = *keep_current;
            if let Some(c) = d.account.ledger.get_mut(&cid) {
                c.refunded = amount;
                c.status = crate::ledger::ChargeStatus::Refunded;
            }
            d.record(
                "charge.refunded",
                None,
                Value::Null,
                json!({"charge_id": cid, "refund": refund, "amount": amount}),
            );
            let r = &mut d.account.resources[i];
            r.job = None;
            r.message = None;
            if keep_current {
                // The plan change failed: the current plan stays as it was.
                r.updated_at = now;
                r.message = Some(format!(
                    "the plan change failed: {} The charge was refunded.",
                    reason.message
                ));
                return Ok(());
            }
            r.error = Some(ErrorInfo {
                code: reason.code,
                message: format!("{} The charge was refunded.", reason.message),
            });
            d.set_status(i, ResourceStatus::Errored, "resource.failed");
            return Ok(());
        }
        (
            Job::Operator { action, .. },
            ActionResult::Operator {
                status,
                access_configuration,
                retry_after,
                error,
            },
        ) => {
            let action = action.clone();
            match status.as_str() {
                "pending" => {
                    js.attempts = d.account.resources[i]
                        .job
                        .as_ref()
                        .map(|j| j.attempts + 1)
                        .unwrap_or(1);
                    // Bounded like an outage: a backend that stays `pending` is given up on.
                    // Operator backends are free services (the catalog refuses paid ones), so
                    // there is no charge to refund; `fail_job` releases nothing else.
                    if js.attempts >= settings.max_attempts {
                        return fail_job(
                            d,
                            i,
                            ResourceError::BackendTimeout {
                                attempts: js.attempts,
                                waited: now - js.started_at,
                            },
                        );
                    }
                    js.next_at = now + retry_after.unwrap_or(2).clamp(1, 300);
                    d.account.resources[i].job = Some(js);
                    d.account.resources[i].message =
                        Some("the platform is still provisioning it".into());
                    return Ok(());
                }
                "complete" | "removed" => {
                    let before = summary(&d.account.resources[i]);
                    let r = &mut d.account.resources[i];
                    r.job = None;
                    r.message = None;
                    r.updated_at = now;
                    if action == "remove" {
                        r.detail = Detail::Operator {
                            access_configuration: None,
                        };
                        r.status = ResourceStatus::Removed;
                        let after = summary(r);
                        d.record("resource.removed", None, before, after);
                    } else {
                        r.detail = Detail::Operator {
                            access_configuration,
                        };
                        r.status = ResourceStatus::Complete;
                        let after = summary(r);
                        d.record(
                            if action == "rotate" {
                                "resource.rotated"
                            } else {
                                "resource.completed"
                            },
                            None,
                            before,
                            after,
                        );
                    }
                    return Ok(());
                }
                _ => {
                    let e = error.unwrap_or(ErrorInfo {
                        code: "backend_error".into(),
                        message: "the platform reported an error".into(),
                    });
                    return fail_job(
                        d,
                        i,
                        ResourceError::Backend {
                            code: e.code,
                            message: e.message,
                        },
                    );
                }
            }
        }
        (_, other) => {
            return fail_job(
                d,
                i,
                ResourceError::Backend {
                    code: "unexpected_answer".into(),
                    message: format!("unexpected answer {other:?}"),
                },
            );
        }
    }
    d.account.resources[i].job = Some(js);
    Ok(())
}

/// A job failed for good: release the money, let go of claimed names, refund what was charged,
/// then leave the resource where the human or agent can act on it. Every purchase ends with
/// what was paid for in place, or with its charge refunded (a `Refund` follow-up).
pub(crate) fn fail_job(d: &mut Draft, i: usize, error: ResourceError) -> Result<(), ResourceError> {
    d.keep_on_error();
    let now = d.now();
    let r = d.account.resources[i].clone();
    let Some(js) = r.job.clone() else {
        return Err(error);
    };
    let info = resource_error_info(&error);
    if let Job::Subscribe {
        charge_id,
        payment_intent: None,
        ..
    }
    | Job::BuyDomain {
        charge_id,
        payment_intent: None,
        ..
    } = &js.job
    {
        let cid = charge_id.clone();
        d.account.ledger.release(&cid);
        d.record(
            "spend.released",
            None,
            Value::Null,
            json!({"charge_id": cid}),
        );
    }
    d.record(
        "job.failed",
        None,
        summary(&r),
        json!({"resource_id": r.id, "code": info.code, "message": info.message}),
    );
    if let Job::Subscribe {
        replaces: Some(old),
        subscription: Some(_),
        ..
    } = &js.job
    {
        // Kept on record and retried from the alarm: two subscriptions never both bill
        // silently, and remove/close cancel it too.
        let retry_at = now + stale_backoff(1);
        d.account.billing.cancelling.push(StaleSubscription {
            subscription_id: old.clone(),
            resource_id: r.id.clone(),
            since: now,
            attempts: 1,
            next_at: retry_at,
            last_error: Some(crate::text::truncate(&info.message, 200).to_string()),
        });
        d.record(
            "subscription.cancel_failed",
            None,
            Value::Null,
            json!({"resource_id": r.id, "subscription_id": old, "code": info.code,
                   "retry_at": format_rfc3339(retry_at)}),
        );
    }
    let stale = stale_message(&d.account, &r.id);
    let follow_up = |job: Job| {
        Some(JobState {
            job,
            started_at: now,
            attempts: 0,
            next_at: now,
            acknowledged: true,
        })
    };
    let res = &mut d.account.resources[i];
    res.job = None;
    res.updated_at = now;
    match js.job {
        // paid -> paid: the new plan is paid for and in place; only cancelling the old
        // subscription failed. Nothing to refund; it is retried (see above) and said so. The
        // change itself succeeded, so the caller is not told it failed.
        Job::Subscribe {
            replaces: Some(_),
            subscription: Some(_),
            ..
        } => {
            res.message = stale;
            return Ok(());
        }
        // Charged, but the subscription could not be started: refund it. A plan change keeps
        // the current plan; a new plan stays `pending` until the refund, then ends `errored`
        // (it is never dropped while its charge is live: a retried create finds it).
        Job::Subscribe {
            payment_intent: Some(pi),
            charge_id,
            amount,
            ..
        } => {
            let keep_current = r.status == ResourceStatus::Complete;
            if !keep_current {
                res.status = ResourceStatus::Pending;
            }
            res.message =
                Some("the subscription could not be started; refunding the charge".into());
            res.job = follow_up(Job::Refund {
                payment_intent: pi,
                charge_id,
                amount,
                reason: info,
                keep_current,
            });
        }
        // A failed plan change leaves the current plan in place.
        Job::Subscribe { .. } if r.status == ResourceStatus::Complete => {
            res.message = Some(format!("the plan change failed: {}", info.message));
        }
        Job::Unsubscribe { .. }
        | Job::ReleaseDomain {
            then_remove: true, ..
        } => {
            res.status = ResourceStatus::Complete;
            res.message = Some(format!("the change failed: {}", info.message));
        }
        // A new plan whose purchase failed before anyone was told it was pending, and before
        // any money moved: nothing stays.
        Job::Subscribe { .. } if !js.acknowledged => {
            d.account.resources.remove(i);
        }
        // Charged but not registered: refund, then report.
        Job::BuyDomain {
            payment_intent: Some(pi),
            charge_id,
            amount,
            ..
        } => {
            res.status = ResourceStatus::Pending;
            res.message = Some("the registration failed; refunding the charge".into());
            res.job = follow_up(Job::Refund {
                payment_intent: pi,
                charge_id,
                amount,
                reason: info,
                keep_current: false,
            });
        }
        // Not charged: back to the quote, letting go of a claimed name first.
        Job::BuyDomain {
            claimed, domain, ..
        } => {
            res.status = ResourceStatus::NeedsInformation;
            res.message = Some(format!("the purchase failed: {}", info.message));
            if claimed {
                res.job = follow_up(Job::ReleaseDomain {
                    domain,
                    then_remove: false,
                });
            }
        }
        Job::Operator { action, .. } if action != "create" => {
            res.status = ResourceStatus::Complete;
            res.message = Some(format!("the {action} failed: {}", info.message));
        }
        // The refund itself was refused: the money is still with us. A plan change keeps
        // its (working) current plan; anything else ends `errored` with `refund_failed`,
        // which also keeps a retried create from charging again (`prepare_create`).
        Job::Refund {
            keep_current: true,
            reason,
            ..
        } => {
            res.message = Some(format!(
                "the plan change failed ({}) and its charge could not be refunded ({}); the operator must refund it",
                reason.message, info.message
            ));
        }
        Job::Refund { reason, .. } => {
            res.status = ResourceStatus::Errored;
            res.error = Some(ErrorInfo {
                code: REFUND_FAILED.into(),
                message: format!(
                    "{} The charge could not be refunded ({}); the operator must refund it.",
                    reason.message, info.message
                ),
            });
        }
        _ => {
            res.status = ResourceStatus::Errored;
            res.error = Some(info);
        }
    }
    Err(error)
}
