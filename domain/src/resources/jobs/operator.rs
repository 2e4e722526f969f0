//! Operator backend: ask the operator's backend to `create`, `link`, `update`, `rotate` or
//! `remove` the resource, and poll (the same request, the same key) while it answers `pending`.
//!
//! Invariants: a backend that stays `pending` is given up on after `max_attempts`, like an
//! outage; a failed `update`, `rotate` or `remove` keeps the resource `complete` (what it had
//! still works). A backend answering `needs_information` (for a create or a link) ends the job
//! with the resource `needs_information` and the schema it asked with (checked to be one we
//! enforce); the orchestrator's `submitted_information` starts the same action again with it.
//! Operator backends serve free services only (the catalog refuses paid ones), so there is
//! never a charge to refund.

use crate::audit_action::AuditAction;
use serde_json::json;

use crate::account::Draft;
use crate::resources::action::{Action, ActionResult, OperatorStatus};
use crate::resources::error::ResourceError;
use crate::resources::jobs::work::{
    continue_as, errored, follow_up, unexpected, Failed, Next, Progress, Told, Work,
};
use crate::resources::model::{
    Detail, ErrorInfo, InformationAsked, Job, JobState, OperatorAction, OperatorBilling,
    ResourceStatus, Settings, UsageBilling,
};
use crate::resources::render::summary;

pub(crate) struct Operator;

/// A paid operator service's live subscription and first charge, if it has one.
fn billing_of(r: &crate::resources::model::Resource) -> Option<OperatorBilling> {
    match &r.detail {
        Detail::Operator { billing, .. } => billing.clone(),
        _ => None,
    }
}

/// A usage-based service's metered billing, if it has one.
pub(crate) fn usage_of(r: &crate::resources::model::Resource) -> Option<UsageBilling> {
    match &r.detail {
        Detail::Operator { usage, .. } => usage.clone(),
        _ => None,
    }
}

/// A call of the operator's backend, started now (see `Job::Operator`).
pub(crate) fn operator_job(
    d: &Draft,
    action: OperatorAction,
    url: String,
    submitted_information: Option<serde_json::Value>,
    configuration: Option<serde_json::Value>,
) -> Job {
    Job::Operator {
        action,
        url,
        submitted_information,
        configuration,
        call: Some(d.account.chain.next_seq),
    }
}

impl Work for Operator {
    fn next_action(&self, next: &Next) -> Option<Action> {
        let Job::Operator {
            action,
            url,
            submitted_information,
            configuration,
            call,
        } = &next.job.job
        else {
            return None;
        };
        let (a, r) = (next.account, next.resource);
        let mut body = json!({"action": action, "account_id": a.id, "resource_id": r.id,
                              "service_id": r.service_id, "project_id": r.project_id,
                              "configuration": configuration.as_ref().unwrap_or(&r.configuration)});
        if let Some(info) = submitted_information {
            body["submitted_information"] = info.clone();
        }
        if let Some(e) = &r.environment {
            body["environment"] = json!(e);
        }
        if r.linked {
            body["linked"] = json!(true);
        }
        let scope = match call {
            Some(n) => format!("{}-{n}", next.job.started_at),
            None => next.job.started_at.to_string(),
        };
        Some(Action::CallOperator {
            key: next.key(&scope, &format!("operator-{}", action.as_str())),
            url: url.clone(),
            body,
        })
    }

    fn apply(
        &self,
        d: &mut Draft,
        i: usize,
        js: &mut JobState,
        outcome: ActionResult,
        settings: &Settings,
    ) -> Result<Progress, ResourceError> {
        let Job::Operator {
            action,
            configuration: new_configuration,
            ..
        } = &js.job
        else {
            return Err(unexpected(outcome));
        };
        let action = *action;
        let new_configuration = new_configuration.clone();
        let ActionResult::Operator {
            status,
            access_configuration,
            retry_after,
            error,
            schema,
            message,
        } = outcome
        else {
            return Err(unexpected(outcome));
        };
        let now = d.now();
        match status {
            OperatorStatus::Pending => {
                js.attempts = d.account.resources[i]
                    .job
                    .as_ref()
                    .map(|j| j.attempts + 1)
                    .unwrap_or(1);
                // Bounded like an outage: a backend that stays `pending` is given up on.
                if js.attempts >= settings.max_attempts {
                    return Err(ResourceError::BackendTimeout {
                        attempts: js.attempts,
                        waited: now - js.started_at,
                    });
                }
                js.next_at = now + retry_after.unwrap_or(2).clamp(1, 300);
                d.account.resources[i].message =
                    Some("the platform is still provisioning it".into());
                Ok(Progress::Continue)
            }
            OperatorStatus::Complete | OperatorStatus::Removed => {
                let before = summary(&d.account.resources[i]);
                let billing = billing_of(&d.account.resources[i]);
                let usage = usage_of(&d.account.resources[i]);
                let subscription = billing
                    .as_ref()
                    .and_then(|b| b.subscription_id.clone())
                    .or_else(|| usage.as_ref().map(|u| u.subscription_id.clone()));
                if let (OperatorAction::Remove, Some(sub)) = (action, subscription) {
                    // Gone at the platform; its subscription is cancelled next, then it is
                    // removed (`Unsubscribe`), so nothing goes on billing.
                    let cancel = Job::Unsubscribe {
                        target_service: None,
                        subscription_id: sub,
                    };
                    continue_as(js, cancel, now);
                    let r = &mut d.account.resources[i];
                    r.detail = Detail::Operator {
                        access_configuration: None,
                        asked: None,
                        billing,
                        usage,
                    };
                    r.message = Some("cancelling its subscription".into());
                    r.updated_at = now;
                    return Ok(Progress::Continue);
                }
                let r = &mut d.account.resources[i];
                r.job = None;
                r.message = None;
                r.updated_at = now;
                if action == OperatorAction::Remove {
                    r.detail = Detail::Operator {
                        access_configuration: None,
                        asked: None,
                        billing: None,
                        usage: None,
                    };
                    r.status = ResourceStatus::Removed;
                    let after = summary(r);
                    d.record(AuditAction::ResourceRemoved, None, before, after);
                } else if matches!(action, OperatorAction::Suspend | OperatorAction::Resume) {
                    // The access configuration stays; only the pause state moves.
                    let suspended = action == OperatorAction::Suspend;
                    let hold = r.hold.get_or_insert_with(Default::default);
                    hold.suspended = suspended;
                    if hold.is_clear() {
                        r.hold = None;
                    }
                    r.message = r
                        .hold
                        .as_ref()
                        .and_then(|h| h.message(&d.account.ledger.currency));
                    let after = summary(r);
                    let recorded = if suspended {
                        AuditAction::ResourceSuspended
                    } else {
                        AuditAction::ResourceResumed
                    };
                    d.record(recorded, None, before, after);
                } else {
                    if let Some(c) = new_configuration {
                        r.configuration = c;
                    }
                    if let Some(h) = r.hold.as_mut() {
                        // A create's answer: the resource runs now (a pause applies later).
                        h.suspended = false;
                    }
                    r.detail = Detail::Operator {
                        access_configuration,
                        asked: None,
                        billing,
                        usage,
                    };
                    r.status = ResourceStatus::Complete;
                    let after = summary(r);
                    let recorded = match action {
                        OperatorAction::Rotate => AuditAction::ResourceRotated,
                        OperatorAction::Update => AuditAction::ResourceUpdated,
                        OperatorAction::Link => AuditAction::ResourceLinked,
                        _ => AuditAction::ResourceCompleted,
                    };
                    d.record(recorded, None, before, after);
                }
                Ok(Progress::Ended)
            }
            OperatorStatus::NeedsInformation
                if matches!(action, OperatorAction::Create | OperatorAction::Link) =>
            {
                // Only a schema we enforce in full can be asked with: we validate the answer.
                let schema = schema.filter(|s| crate::schema::check_schema(s).is_ok()).ok_or_else(|| {
                    ResourceError::Backend {
                        code: "invalid_schema".into(),
                        message: "the platform asked for information with a missing or unsupported schema".into(),
                    }
                })?;
                let before = summary(&d.account.resources[i]);
                let billing = billing_of(&d.account.resources[i]);
                let usage = usage_of(&d.account.resources[i]);
                let r = &mut d.account.resources[i];
                r.job = None;
                r.updated_at = now;
                r.status = ResourceStatus::NeedsInformation;
                r.message = Some(
                    message
                        .map(|m| crate::text::truncate(&m, 500).to_string())
                        .unwrap_or_else(|| "the platform needs more information".into()),
                );
                r.detail = Detail::Operator {
                    access_configuration: None,
                    asked: Some(InformationAsked {
                        action,
                        schema,
                        purchase: None,
                    }),
                    billing,
                    usage,
                };
                let after = summary(r);
                d.record(
                    AuditAction::ResourceInformationRequested,
                    None,
                    before,
                    after,
                );
                Ok(Progress::Ended)
            }
            OperatorStatus::NeedsInformation | OperatorStatus::Error => {
                let e = error.unwrap_or(ErrorInfo {
                    code: "backend_error".into(),
                    message: "the platform reported an error".into(),
                });
                Err(ResourceError::Backend {
                    code: e.code,
                    message: e.message,
                })
            }
        }
    }

    fn fail(&self, d: &mut Draft, i: usize, failed: Failed) -> Told {
        match failed.job {
            // What the resource had still works after a failed change; a failed create or
            // link had nothing yet.
            Job::Operator { action, .. }
                if !matches!(action, OperatorAction::Create | OperatorAction::Link) =>
            {
                let res = &mut d.account.resources[i];
                res.status = ResourceStatus::Complete;
                res.message = Some(format!(
                    "the {} failed: {}",
                    action.as_str(),
                    failed.info.message
                ));
                if let Some(h) = res.hold.as_mut() {
                    // The hold is tried again later, not in a loop.
                    h.retry_at = Some(failed.now + crate::resources::model::Hold::RETRY_SECONDS);
                }
                true
            }
            // A paid service the backend could not create: its subscription (if any) is
            // cancelled and its charge refunded (`Refund`), then it ends `errored`.
            Job::Operator { .. } => match billing_of(&d.account.resources[i]) {
                // Credits paid it all and nothing bills: they are given back, nothing to refund.
                Some(b) if b.amount == 0 && b.subscription_id.is_none() => {
                    crate::resources::jobs::payment::refunded_by_credits(d, &b.charge_id);
                    let info = crate::resources::model::ErrorInfo {
                        message: format!("{} The credits were given back.", failed.info.message),
                        ..failed.info
                    };
                    errored(d, i, info)
                }
                Some(b) => {
                    let res = &mut d.account.resources[i];
                    res.status = ResourceStatus::Pending;
                    res.message = Some(
                        "the platform could not create it; cancelling the subscription and refunding the first period"
                            .into(),
                    );
                    res.job = follow_up(
                        Job::Refund {
                            payment_intent: b.payment_intent,
                            charge_id: b.charge_id,
                            amount: b.amount,
                            reason: failed.info,
                            keep_current: false,
                            cancel_subscription: b.subscription_id,
                        },
                        failed.now,
                    );
                    true
                }
                None => match usage_of(&d.account.resources[i]) {
                    // A usage-based service: only its metered subscription to cancel.
                    Some(u) => {
                        let res = &mut d.account.resources[i];
                        res.status = ResourceStatus::Pending;
                        res.message = Some(
                            "the platform could not create it; cancelling its subscription".into(),
                        );
                        res.job = follow_up(
                            Job::Refund {
                                payment_intent: String::new(),
                                charge_id: String::new(),
                                amount: 0,
                                reason: failed.info,
                                keep_current: false,
                                cancel_subscription: Some(u.subscription_id),
                            },
                            failed.now,
                        );
                        true
                    }
                    None => errored(d, i, failed.info),
                },
            },
            _ => errored(d, i, failed.info),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::resources::action::{ActionResult, OperatorStatus};
    use crate::resources::model::{Job, JobState, OperatorAction};

    /// Stored jobs written while the action was a string read back the same (literals as serde
    /// wrote them before `OperatorAction`).
    #[test]
    fn stored_operator_jobs_from_before_the_enum_read_back() {
        let old = r#"{"job":{"job":"operator","action":"rotate","url":"https://ops.example/backend"},"started_at":1700000000,"attempts":2,"next_at":1700000004,"acknowledged":true}"#;
        let js: JobState = serde_json::from_str(old).unwrap();
        assert_eq!(
            js,
            JobState {
                job: Job::Operator {
                    action: OperatorAction::Rotate,
                    url: "https://ops.example/backend".into(),
                    submitted_information: None,
                    configuration: None,
                    call: None,
                },
                started_at: 1700000000,
                attempts: 2,
                next_at: 1700000004,
                acknowledged: true,
            }
        );
        assert_eq!(serde_json::to_string(&js).unwrap(), old);
        for (text, action) in [
            (
                r#"{"job":"operator","action":"create","url":"u"}"#,
                OperatorAction::Create,
            ),
            (
                r#"{"job":"operator","action":"remove","url":"u"}"#,
                OperatorAction::Remove,
            ),
        ] {
            let job: Job = serde_json::from_str(text).unwrap();
            assert_eq!(
                job,
                Job::Operator {
                    action,
                    url: "u".into(),
                    submitted_information: None,
                    configuration: None,
                    call: None,
                }
            );
            assert_eq!(serde_json::to_string(&job).unwrap(), text);
        }
    }

    #[test]
    fn backend_statuses_keep_their_strings_and_anything_else_is_an_error() {
        for (text, status) in [
            ("pending", OperatorStatus::Pending),
            ("complete", OperatorStatus::Complete),
            ("removed", OperatorStatus::Removed),
            ("error", OperatorStatus::Error),
        ] {
            assert_eq!(OperatorStatus::from(text), status);
            assert_eq!(serde_json::to_value(status).unwrap(), text);
            assert_eq!(
                serde_json::from_value::<OperatorStatus>(text.into()).unwrap(),
                status
            );
        }
        assert_eq!(OperatorStatus::from("failed"), OperatorStatus::Error);
        assert_eq!(
            serde_json::from_value::<OperatorStatus>("failed".into()).unwrap(),
            OperatorStatus::Error
        );
        let answer = ActionResult::Operator {
            status: "pending".into(),
            access_configuration: None,
            retry_after: Some(3),
            error: None,
            schema: None,
            message: None,
        };
        let v = serde_json::to_value(&answer).unwrap();
        assert_eq!(v["status"], "pending");
    }
}
