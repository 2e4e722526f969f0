//! An in-memory [`Store`] and [`Effects`] for the engine's tests, with a manual executor.
//!
//! Storage calls and outbound calls append to one shared journal, so tests can check their
//! order; D1 and outbound calls can be held (pending) or failed on demand.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::pin::pin;
use std::rc::Rc;
use std::task::{Context, Poll, Waker};

use serde_json::Value;

use crate::account::Account;
use crate::audit::AuditRecord;
use crate::engine::outbox::{FLUSH_ATTEMPTS, FLUSH_WAKE};
use crate::engine::ports::{Effects, Level, Store, Stored};
use crate::object_sql;
use crate::resources::{Action, ActionResult, Settings};

pub type Journal = Rc<RefCell<Vec<String>>>;

#[derive(Default)]
pub struct MemStore {
    pub now: Rc<Cell<i64>>,
    pub journal: Journal,
    pub state: RefCell<Option<String>>,
    /// One row per change, as `SqlStore` keeps them ([`object_sql::outbox_row`]).
    pub outbox: RefCell<BTreeMap<u64, String>>,
    pub kv: RefCell<BTreeMap<String, String>>,
    pub alarm: Cell<Option<i64>>,
    /// Writes fail (the transaction rolls back).
    pub fail_writes: Cell<bool>,
    /// Outbox deletes fail (the rows stay).
    pub fail_deletes: Cell<bool>,
    /// How many times the outbox was read.
    pub outbox_reads: Cell<usize>,
}

impl MemStore {
    /// How many records wait in the outbox.
    pub fn outbox_len(&self) -> usize {
        let outbox = self.outbox.borrow();
        object_sql::outbox_records(outbox.values().map(String::as_str), usize::MAX).len()
    }
}

impl Store for MemStore {
    /// kv entries written in the same transaction.
    type Extra = Vec<(String, String)>;

    fn read_state(&self) -> Stored {
        let kv = self.kv.borrow();
        Stored {
            account: self
                .state
                .borrow()
                .as_deref()
                .and_then(|s| serde_json::from_str(s).ok()),
            outbox_empty: self.outbox.borrow().is_empty(),
            flush_failing: kv.contains_key(FLUSH_ATTEMPTS) || kv.contains_key(FLUSH_WAKE),
        }
    }

    fn write(
        &self,
        state_json: String,
        outbox: Vec<(u64, String)>,
        extra: Self::Extra,
    ) -> Result<(), String> {
        self.journal
            .borrow_mut()
            .push(format!("write {}", outbox.len()));
        if self.fail_writes.get() {
            return Err("disk full".into());
        }
        *self.state.borrow_mut() = Some(state_json);
        if let Some((last, row)) = object_sql::outbox_row(&outbox) {
            self.outbox.borrow_mut().insert(last, row);
        }
        self.kv.borrow_mut().extend(extra);
        Ok(())
    }

    fn read_outbox(&self, limit: usize) -> Vec<AuditRecord> {
        self.outbox_reads.set(self.outbox_reads.get() + 1);
        let outbox = self.outbox.borrow();
        object_sql::outbox_records(outbox.values().map(String::as_str), limit)
            .into_iter()
            .filter_map(|t| serde_json::from_str(t).ok())
            .collect()
    }

    fn delete_outbox_through(&self, seq: u64) -> bool {
        self.journal.borrow_mut().push(format!("delete {seq}"));
        if self.fail_deletes.get() {
            return false;
        }
        self.outbox.borrow_mut().retain(|s, _| *s > seq);
        true
    }

    fn kv(&self, key: &str) -> Option<String> {
        self.kv.borrow().get(key).cloned()
    }

    fn set_kv(&self, key: &str, value: Option<String>) {
        let mut kv = self.kv.borrow_mut();
        match value {
            Some(v) => kv.insert(key.to_string(), v),
            None => kv.remove(key),
        };
    }

    async fn alarm(&self) -> Result<Option<i64>, String> {
        self.journal.borrow_mut().push("get alarm".into());
        Ok(self.alarm.get())
    }

    async fn set_alarm(&self, delay_ms: i64) -> Result<(), String> {
        let at = self.now.get() + delay_ms;
        self.journal.borrow_mut().push(format!("set alarm {at}"));
        self.alarm.set(Some(at));
        Ok(())
    }

    async fn delete_alarm(&self) -> Result<(), String> {
        self.journal.borrow_mut().push("delete alarm".into());
        self.alarm.set(None);
        Ok(())
    }
}

#[derive(Default)]
pub struct MemEffects {
    pub now: Rc<Cell<i64>>,
    pub journal: Journal,
    pub batch_ms: i64,
    /// Answers to outbound calls, in order (none left: `Unavailable`).
    pub answers: RefCell<VecDeque<ActionResult>>,
    pub performed: RefCell<Vec<Action>>,
    /// Outbound calls stay pending while set.
    pub hold_calls: Cell<bool>,
    /// Records D1 confirmed.
    pub d1: RefCell<Vec<AuditRecord>>,
    /// D1 writes fail while set.
    pub d1_down: Cell<bool>,
    /// D1 writes stay pending while set.
    pub hold_d1: Cell<bool>,
    /// At most this many D1 writes (0: any): a flush that would never end fails its test
    /// instead of hanging it.
    pub d1_write_limit: Cell<usize>,
    /// D1 writes so far.
    pub d1_writes: Cell<usize>,
    pub logs: RefCell<Vec<(Level, Value)>>,
}

impl Effects for MemEffects {
    fn now_ms(&self) -> i64 {
        self.now.get()
    }

    fn audit_batch_ms(&self) -> i64 {
        self.batch_ms
    }

    fn payment_grace(&self) -> i64 {
        3 * 86_400
    }

    fn settings(&self) -> Settings {
        Settings::default()
    }

    async fn perform(&self, _: &Account, resource_id: &str, action: Action) -> ActionResult {
        self.journal
            .borrow_mut()
            .push(format!("perform {resource_id}"));
        self.performed.borrow_mut().push(action);
        Until(|| !self.hold_calls.get()).await;
        self.answers
            .borrow_mut()
            .pop_front()
            .unwrap_or(ActionResult::Unavailable {
                message: "no answer scripted".into(),
            })
    }

    async fn write_audit(&self, records: &[AuditRecord]) -> Result<(), String> {
        self.journal
            .borrow_mut()
            .push(format!("d1 {}", records.len()));
        self.d1_writes.set(self.d1_writes.get() + 1);
        let limit = self.d1_write_limit.get();
        assert!(
            limit == 0 || self.d1_writes.get() <= limit,
            "more than {limit} D1 writes: the flush does not end"
        );
        Until(|| !self.hold_d1.get()).await;
        if self.d1_down.get() {
            return Err("D1 is down".into());
        }
        self.d1.borrow_mut().extend_from_slice(records);
        Ok(())
    }

    fn log(&self, level: Level, line: Value) {
        self.logs.borrow_mut().push((level, line));
    }
}

/// Ready once `ready()` holds (the test's executor polls again).
struct Until<F>(F);

impl<F: Fn() -> bool + Unpin> Future for Until<F> {
    type Output = ();

    fn poll(self: std::pin::Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        if (self.0)() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

/// Runs `fut` to the end: every await here is ready or held by a flag nobody clears meanwhile,
/// so a future still pending after many polls is a bug.
pub fn block_on<F: Future>(fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..1000 {
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
    }
    panic!("the future never finished (is a call held?)");
}
