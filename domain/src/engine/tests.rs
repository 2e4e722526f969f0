use crate::audit_action::AuditAction;
use std::cell::Cell;
use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Wake, Waker};

use serde_json::{json, Value};

use crate::account::{self, apply, test_new_account, AccountError, Ctx, Policy};
use crate::audit::{Actor, ActorKind};
use crate::catalog::{Catalog, DEFAULT_CATALOG};
use crate::engine::core::{Engine, FLUSH_SAFETY_MS, MAX_STEPS};
use crate::engine::memory::{block_on, Journal, MemEffects, MemStore};
use crate::engine::outbox::{backoff_ms, FLUSH_ATTEMPTS, FLUSH_WAKE};
use crate::resources::{
    self, Action, ActionResult, CreateCall, NewIds, ResourceError, ResourceStatus, Settings,
};
use crate::stripe_api::GrantedToken;

/// Unix s.
const T0: i64 = 1_800_000_000;
const NOW_MS: i64 = T0 * 1000;

type E = Engine<MemStore, MemEffects>;

fn engine(batch_ms: i64) -> E {
    let now = Rc::new(Cell::new(NOW_MS));
    let journal = Journal::default();
    let store = MemStore {
        now: now.clone(),
        journal: journal.clone(),
        ..MemStore::default()
    };
    let effects = MemEffects {
        now,
        journal,
        batch_ms,
        ..MemEffects::default()
    };
    Engine::new(store, effects)
}

fn ctx(e: &E) -> Ctx {
    Ctx {
        now: e.now_s(),
        actor: Actor::new(ActorKind::System, None),
        request_id: None,
        policy: Policy::default(),
    }
}

fn journal(e: &E) -> Vec<String> {
    e.store().journal.take()
}

/// Creates the account (its record is sent at once).
fn created(e: &E) {
    block_on(e.commit(account::create(test_new_account(), &ctx(e)))).unwrap();
}

/// A change with one record that waits for the batch.
fn note(e: &E) -> Result<(), AccountError> {
    let a = e.load().unwrap();
    block_on(e.commit(apply(&a, &ctx(e), |d| {
        d.record(AuditAction::ResourceUpdated, None, Value::Null, json!({}));
        Ok::<(), AccountError>(())
    })))
}

fn kv(e: &E, key: &str) -> Option<String> {
    e.store().kv.borrow().get(key).cloned()
}

/// A paid plan whose job is due: retrieve the token, customer, payment, subscription.
fn paid_plan(e: &E) -> String {
    let catalog = Catalog::parse(DEFAULT_CATALOG).unwrap();
    let body = json!({"service_id": "paid", "project_id": "proj_1",
        "payment_credentials": {"type": "stripe_payment_token", "stripe_payment_token": "spt_1"}});
    let req = resources::parse_create(
        body.to_string().as_bytes(),
        &catalog,
        CreateCall::Create,
        None,
    )
    .unwrap();
    let ids = NewIds {
        resource_id: "res_1".into(),
        charge_id: "ch_1".into(),
        token_hash: None,
        token_sealed: None,
    };
    let a = e.load().unwrap();
    block_on(e.commit(apply(&a, &ctx(e), |d| {
        resources::create(d, &req, &catalog, ids, None)
    })))
    .unwrap()
}

fn token() -> ActionResult {
    ActionResult::Token {
        token: GrantedToken {
            id: "spt_1".into(),
            currency: "usd".into(),
            max_amount: 5000,
            expires_at: Some(T0 + 3600),
            amount_captured: 0,
            deactivated: false,
        },
    }
}

fn performed(e: &E) -> Vec<&'static str> {
    e.effects()
        .performed
        .borrow()
        .iter()
        .map(|a| match a {
            Action::RetrieveToken { .. } => "token",
            Action::CreateCustomer { .. } => "customer",
            Action::CreatePaymentIntent { .. } => "payment",
            Action::CreateSubscription { .. } => "subscription",
            _ => "other",
        })
        .collect()
}

/// Counts wake-ups.
#[derive(Default)]
struct Wakes(AtomicUsize);

impl Wake for Wakes {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn the_alarm_is_armed_before_the_write() {
    let e = engine(1000);
    created(&e);
    assert_eq!(
        journal(&e),
        [
            "get alarm".to_string(),
            format!("set alarm {}", NOW_MS + FLUSH_SAFETY_MS),
            "write 3".into(),
            "d1 3".into(),
            "delete 3".into(),
            "delete alarm".into(),
        ],
        "a record needed at once: armed, written, sent, deleted once confirmed, alarm dropped"
    );
    note(&e).unwrap();
    assert_eq!(
        journal(&e),
        [format!("set alarm {}", NOW_MS + 1000), "write 1".into()],
        "a batched record: the alarm (AUDIT_BATCH_MS later) is set before the write, no flush"
    );
    // A failed write leaves the state as it was; the alarm armed for it only finds nothing.
    e.store().fail_writes.set(true);
    assert_eq!(note(&e), Err(AccountError::Unavailable));
    assert_eq!(
        journal(&e),
        ["write 1"],
        "the alarm was already early enough"
    );
    assert_eq!(e.store().outbox_len(), 1);
}

#[test]
fn records_are_deleted_only_after_d1_confirmed_them() {
    let e = engine(1000);
    e.effects().d1_down.set(true);
    created(&e);
    assert_eq!(e.store().outbox_len(), 3, "account.created and its two");
    assert!(e.effects().d1.borrow().is_empty());
    assert!(!journal(&e).iter().any(|l| l.starts_with("delete 3")));
    assert_eq!(kv(&e, FLUSH_ATTEMPTS).as_deref(), Some("1"));
    let wake = NOW_MS + 1000;
    assert_eq!(kv(&e, FLUSH_WAKE), Some(wake.to_string()));
    assert_eq!(
        e.store().alarm.get(),
        Some(wake),
        "the alarm retries the flush"
    );

    e.effects().d1_down.set(false);
    block_on(e.flush());
    assert!(e.store().outbox.borrow().is_empty());
    assert_eq!(e.effects().d1.borrow().len(), 3);
    assert_eq!(kv(&e, FLUSH_ATTEMPTS), None);
    assert_eq!(kv(&e, FLUSH_WAKE), None);
    assert_eq!(e.store().alarm.get(), None, "nothing is due any more");
}

#[test]
fn flush_backoff_doubles_from_one_second_to_five_minutes_and_resets_on_success() {
    let delays: Vec<i64> = (1..=12).map(backoff_ms).collect();
    assert_eq!(
        delays,
        [
            1000, 2000, 4000, 8000, 16_000, 32_000, 64_000, 128_000, 256_000, 300_000, 300_000,
            300_000
        ]
    );

    let e = engine(1000);
    e.effects().d1_down.set(true);
    created(&e); // attempt 1
    for attempt in 2..=12 {
        block_on(e.flush());
        assert_eq!(kv(&e, FLUSH_ATTEMPTS), Some(attempt.to_string()));
        let wake = NOW_MS + backoff_ms(attempt);
        assert_eq!(kv(&e, FLUSH_WAKE), Some(wake.to_string()));
    }
    assert_eq!(
        e.effects().logs.borrow().len(),
        12,
        "each failure is logged"
    );

    e.effects().d1_down.set(false);
    block_on(e.flush());
    assert_eq!(kv(&e, FLUSH_ATTEMPTS), None);

    e.effects().d1_down.set(true);
    note(&e).unwrap();
    block_on(e.flush());
    assert_eq!(
        kv(&e, FLUSH_ATTEMPTS).as_deref(),
        Some("1"),
        "counted afresh"
    );
    assert_eq!(kv(&e, FLUSH_WAKE), Some((NOW_MS + 1000).to_string()));
}

#[test]
fn waiters_of_a_running_flush_wake_when_it_ends() {
    let e = engine(1000);
    created(&e);
    note(&e).unwrap();
    journal(&e);
    e.effects().hold_d1.set(true);
    let mut noop = Context::from_waker(Waker::noop());
    let mut flush = pin!(e.flush());
    assert!(flush.as_mut().poll(&mut noop).is_pending());

    // A second flush returns at once: the running one owns the outbox.
    block_on(e.flush());
    assert_eq!(journal(&e), ["d1 1"], "one D1 write so far");

    let wakes = Arc::new(Wakes::default());
    let waker = Waker::from(wakes.clone());
    let mut cx = Context::from_waker(&waker);
    let mut idle = pin!(e.flush_idle());
    assert!(idle.as_mut().poll(&mut cx).is_pending());
    assert_eq!(wakes.0.load(Ordering::SeqCst), 0);

    e.effects().hold_d1.set(false);
    assert!(flush.as_mut().poll(&mut noop).is_ready());
    assert_eq!(
        wakes.0.load(Ordering::SeqCst),
        1,
        "the ending flush woke its waiter"
    );
    assert!(idle.as_mut().poll(&mut cx).is_ready());
    assert!(e.store().outbox.borrow().is_empty());
}

#[test]
fn a_stale_answer_is_dropped() {
    let e = engine(1000);
    created(&e);
    let id = paid_plan(&e);
    let c = ctx(&e);
    e.effects().hold_calls.set(true);
    e.effects().answers.borrow_mut().extend([
        ActionResult::Refused {
            error: ResourceError::Backend {
                code: "late".into(),
                message: "an answer nobody waits for any more".into(),
            },
        },
        ActionResult::Unavailable {
            message: "later".into(),
        },
    ]);
    let mut noop = Context::from_waker(Waker::noop());
    let mut drive = pin!(e.drive(&id, &c));
    assert!(drive.as_mut().poll(&mut noop).is_pending());
    assert_eq!(performed(&e), ["token"]);

    // One caller drives a job at a time: a second one leaves it to the first.
    assert_eq!(block_on(e.drive(&id, &c)), Ok(()));
    assert_eq!(performed(&e), ["token"]);

    // Meanwhile another event answers the same step (as a webhook would).
    let a = e.load().unwrap();
    block_on(e.commit(apply(&a, &c, |d| {
        resources::apply_outcome(d, &id, token(), &Settings::default())
    })))
    .unwrap();

    e.effects().hold_calls.set(false);
    assert_eq!(block_on(drive), Ok(()));
    // The refusal answered a step that was no longer current: dropped, and the drive went on
    // with the next step (which now waits for a retry).
    assert_eq!(performed(&e), ["token", "customer"]);
    let a = e.load().unwrap();
    let r = resources::find(&a, &id).unwrap();
    assert_eq!(r.status, ResourceStatus::Pending);
    assert_eq!(r.job.as_ref().map(|j| j.attempts), Some(1));
}

#[test]
fn a_drive_stops_at_the_step_limit_and_leaves_the_rest_to_the_alarm() {
    assert_eq!(engine(1000).max_steps, MAX_STEPS);
    let answers = || {
        [
            token(),
            ActionResult::Customer { id: "cus_1".into() },
            ActionResult::PaymentIntent {
                id: "pi_1".into(),
                payment_method: Some("pm_1".into()),
            },
            ActionResult::Subscription {
                id: "sub_1".into(),
                status: "active".into(),
            },
        ]
    };

    let e = engine(1000).with_max_steps(2);
    created(&e);
    let id = paid_plan(&e);
    e.effects().answers.borrow_mut().extend(answers());
    assert_eq!(block_on(e.drive(&id, &ctx(&e))), Ok(()));
    assert_eq!(performed(&e), ["token", "customer"]);
    let a = e.load().unwrap();
    assert!(matches!(
        resources::next_action(&a, &id, T0),
        Some(Action::CreatePaymentIntent { .. })
    ));
    assert!(
        e.store().alarm.get() == Some(NOW_MS + 10),
        "the alarm goes on with the job (due now: as soon as an alarm can be)"
    );

    // Under the default limit the same job runs to the end in one drive.
    let e = engine(1000);
    created(&e);
    let id = paid_plan(&e);
    e.effects().answers.borrow_mut().extend(answers());
    assert_eq!(block_on(e.drive(&id, &ctx(&e))), Ok(()));
    assert_eq!(
        performed(&e),
        ["token", "customer", "payment", "subscription"]
    );
    let a = e.load().unwrap();
    assert_eq!(
        resources::find(&a, &id).unwrap().status,
        ResourceStatus::Complete
    );
}

/// A new instance of the object over the same storage (the old one is gone).
fn restarted(e: E) -> E {
    let Engine { store, effects, .. } = e;
    store.outbox_reads.set(0);
    Engine::new(store, effects)
}

/// The actions D1 confirmed, in order.
fn sent(e: &E) -> Vec<String> {
    e.effects()
        .d1
        .borrow()
        .iter()
        .map(|r| r.action.clone())
        .collect()
}

#[test]
fn an_instance_that_read_an_empty_outbox_sends_its_records_from_memory() {
    let e = engine(1000);
    created(&e);
    let e = restarted(e);
    note(&e).unwrap();
    note(&e).unwrap();
    block_on(e.flush());
    assert_eq!(
        e.store().outbox_reads.get(),
        0,
        "the state's read said the outbox was empty: the two records were kept in memory"
    );
    assert_eq!(sent(&e)[3..], ["resource.updated"; 2]);
    assert!(e.store().outbox.borrow().is_empty());
    assert_eq!(
        e.store().alarm.get(),
        None,
        "nothing unconfirmed: no safety alarm"
    );
}

#[test]
fn records_left_by_an_earlier_instance_are_read_then_memory_takes_over() {
    let e = engine(1000);
    created(&e);
    note(&e).unwrap(); // waits for the batch; the instance dies before it
    let e = restarted(e);
    note(&e).unwrap();
    block_on(e.flush());
    assert_eq!(e.store().outbox_reads.get(), 1);
    assert_eq!(sent(&e)[3..], ["resource.updated"; 2], "both, in order");
    let seqs: Vec<u64> = e.effects().d1.borrow().iter().map(|r| r.seq).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");

    note(&e).unwrap();
    block_on(e.flush());
    assert_eq!(
        e.store().outbox_reads.get(),
        1,
        "seen empty after the first flush: the next one sends from memory"
    );
    assert_eq!(sent(&e).len(), 6);
    assert!(e.store().outbox.borrow().is_empty());
}

#[test]
fn rows_a_failed_delete_left_are_read_and_sent_again() {
    let e = engine(1000);
    created(&e);
    note(&e).unwrap();
    e.store().fail_deletes.set(true);
    block_on(e.flush());
    assert_eq!(sent(&e).len(), 4, "D1 confirmed the record");
    assert_eq!(e.store().outbox_len(), 1, "but its row is still there");
    assert!(
        e.store().alarm.get().is_some(),
        "unconfirmed rows keep the alarm"
    );

    e.store().fail_deletes.set(false);
    let reads = e.store().outbox_reads.get();
    block_on(e.flush());
    assert_eq!(
        e.store().outbox_reads.get(),
        reads + 1,
        "read again, not trusted from memory"
    );
    let d1 = e.effects().d1.borrow();
    assert_eq!(d1.len(), 5);
    assert_eq!(
        d1[3], d1[4],
        "the same record again (D1 ignores the duplicate)"
    );
    drop(d1);
    assert!(e.store().outbox.borrow().is_empty());
    assert_eq!(e.store().alarm.get(), None);
}

/// One change with `n` records, waiting for the batch.
fn change_with_records(e: &E, n: usize) {
    let a = e.load().unwrap();
    block_on(e.commit(apply(&a, &ctx(e), |d| {
        for _ in 0..n {
            d.record(AuditAction::ResourceUpdated, None, Value::Null, json!({}));
        }
        Ok::<(), AccountError>(())
    })))
    .unwrap();
}

#[test]
fn a_change_larger_than_a_batch_read_from_storage_is_sent_whole_once() {
    let e = engine(1000);
    created(&e);
    change_with_records(&e, 60);
    assert_eq!(e.store().outbox.borrow().len(), 1, "one row for the change");
    let e = restarted(e);
    e.effects().d1_write_limit.set(10);
    block_on(e.flush());
    let seqs: Vec<u64> = e.effects().d1.borrow().iter().map(|r| r.seq).collect();
    assert_eq!(
        seqs,
        (1..=63).collect::<Vec<u64>>(),
        "the 60 records in one batch of more than {} (the change is never split when read)",
        crate::engine::outbox::FLUSH_BATCH
    );
    assert_eq!(e.store().outbox_len(), 0);
    assert_eq!(e.store().alarm.get(), None);
}

#[test]
fn a_change_split_by_batches_from_memory_stays_stored_until_its_last_record_is_sent() {
    let e = engine(1000);
    created(&e);
    note(&e).unwrap(); // seq 4, a row of its own
    change_with_records(&e, 60); // seq 5 ..= 64, one row
    journal(&e);
    e.store().outbox_reads.set(0);
    block_on(e.flush());
    let deletes: Vec<String> = journal(&e)
        .into_iter()
        .filter(|l| {
            l.strip_prefix("delete ")
                .is_some_and(|n| n.parse::<u64>().is_ok())
        })
        .collect();
    assert_eq!(
        deletes,
        ["delete 53", "delete 64"],
        "the first batch ends inside the change: its row is kept until the second"
    );
    let seqs: Vec<u64> = e.effects().d1.borrow().iter().map(|r| r.seq).collect();
    assert_eq!(
        seqs,
        (1..=64).collect::<Vec<u64>>(),
        "each record once, in order"
    );
    assert_eq!(e.store().outbox_reads.get(), 0, "from memory");
    assert_eq!(e.store().outbox_len(), 0);
}
