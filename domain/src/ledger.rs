//! The spend ledger and the hard spending cap (our extension; docs/PROTOCOL.md §6.2).
//!
//! Invariants:
//! - A charge is *reserved* in the ledger, in the same storage step that starts the purchase and
//!   before any external call, and only if the month's total (reserved + charged - refunded)
//!   plus the charge stays within the cap. Concurrent purchases on one account are serialised by
//!   its Durable Object, so each sees the others' reservations: the cap cannot be overshot.
//! - A reservation becomes `charged` when the payment succeeds, and is released (`released`)
//!   when it definitely fails; an outage keeps it reserved while the purchase is retried.
//! - Budget alerts (50 %, 80 %, 100 % of the cap) are raised once per month each.
//! - Usage a platform reported (`usage`, `crate::usage`) is money spent in the month it
//!   occurred: it counts against the cap like a charge, and is never refused (it happened);
//!   the cap stops it by pausing the usage-based resources instead.

use serde::{Deserialize, Serialize};

use crate::time::month_bounds;

/// Default cap: $100 per calendar month (UTC), in cents.
pub const DEFAULT_CAP: u64 = 10_000;
/// Highest cap an owner can set: $10,000.
pub const MAX_CAP: u64 = 1_000_000;
/// Alert thresholds, in percent of the cap.
pub const ALERTS: [u64; 3] = [50, 80, 100];

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChargeStatus {
    Reserved,
    Charged,
    Released,
    Refunded,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Charge {
    pub id: String,
    pub resource_id: String,
    pub amount: u64,
    pub currency: String,
    /// First second of the month it counts against.
    pub month: i64,
    pub status: ChargeStatus,
    pub created_at: i64,
    /// Amount refunded so far (refunds and lost disputes).
    #[serde(default)]
    pub refunded: u64,
    /// The Stripe PaymentIntent, once known.
    #[serde(default)]
    pub payment_intent: Option<String>,
    #[serde(default)]
    pub description: String,
    /// The part of the price credits paid (not in `amount`, which is the payment method's part).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub credited: u64,
    /// Which credits paid it, and how much each: given back if the purchase is refunded or
    /// never made.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credits: Vec<(String, u64)>,
}

impl Charge {
    /// A new charge, counted in the month of `at`.
    fn new(
        status: ChargeStatus,
        id: &str,
        resource_id: &str,
        amount: u64,
        currency: &str,
        description: &str,
        at: i64,
    ) -> Charge {
        Charge {
            id: id.to_string(),
            resource_id: resource_id.to_string(),
            amount,
            currency: currency.to_string(),
            month: month_bounds(at).0,
            status,
            created_at: at,
            refunded: 0,
            payment_intent: None,
            description: description.to_string(),
            credited: 0,
            credits: Vec::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    pub cap: u64,
    pub currency: String,
    pub charges: Vec<Charge>,
    /// (month, threshold) pairs already alerted.
    pub alerts: Vec<(i64, u64)>,
    /// Usage reported by the operator's platform for usage-based services.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub usage: Vec<UsageRecord>,
    /// Credits the operator granted (a startup program): usage draws on them first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub credits: Vec<Credit>,
}

/// Credits granted to the account, drawn by usage before anything reaches the payment method
/// (`crate::usage::credits`). Mirrored at Stripe as a Billing credit grant on metered prices,
/// which Stripe applies to the usage invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credit {
    pub id: String,
    /// The operator's idempotency key for the grant.
    pub key: String,
    pub fingerprint: String,
    pub amount: u64,
    pub currency: String,
    pub reason: String,
    pub granted_at: i64,
    pub expires_at: i64,
    /// How much usage has drawn so far.
    #[serde(default)]
    pub used: u64,
    /// The Stripe credit grant, once created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stripe_grant: Option<String>,
    #[serde(default)]
    pub attempts: u32,
    pub next_at: i64,
    /// Why Stripe refused the grant for good.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Credit {
    /// What is left to draw at `now` (nothing once expired).
    pub fn left(&self, now: i64) -> u64 {
        if now >= self.expires_at {
            0
        } else {
            self.amount.saturating_sub(self.used)
        }
    }

    /// Still to be created at Stripe.
    pub fn unsynced(&self) -> bool {
        self.stripe_grant.is_none() && self.error.is_none()
    }
}

/// One usage report, once (by the platform's idempotency key), and its delivery to Stripe as
/// a Billing meter event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRecord {
    /// The platform's idempotency key for the report.
    pub key: String,
    /// SHA-256 (hex) of the report's fields: the same key with another report is refused.
    pub fingerprint: String,
    pub resource_id: String,
    /// In the service's own unit (what the platform measured).
    pub quantity: u64,
    /// What it costs, in the currency's minor unit.
    pub amount: u64,
    pub currency: String,
    pub occurred_at: i64,
    /// First second of the month it counts against (the month it occurred in).
    pub month: i64,
    pub received_at: i64,
    /// The month's spend had already reached the cap when it was reported (the resource was
    /// paused or being paused): billed all the same, shown as over the cap.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub over_cap: bool,
    /// The part of `amount` credits paid: not the owner's money, so not counted against the cap.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub credited: u64,
    pub meter: MeterDelivery,
}

/// A usage record's meter event: sent until Stripe accepts it (`billed_at`) or refuses it for
/// good (`error`, with `billed_at` unset).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MeterDelivery {
    /// The meter event's `identifier` (and the call's idempotency key).
    pub identifier: String,
    pub event_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub billed_at: Option<i64>,
    #[serde(default)]
    pub attempts: u32,
    pub next_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl MeterDelivery {
    /// Still to be sent.
    pub fn pending(&self) -> bool {
        self.billed_at.is_none() && self.error.is_none()
    }
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger {
            cap: DEFAULT_CAP,
            currency: "usd".into(),
            charges: Vec::new(),
            alerts: Vec::new(),
            usage: Vec::new(),
            credits: Vec::new(),
        }
    }
}

/// Why a charge cannot be reserved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CapError {
    Exceeded { spent: u64, cap: u64, amount: u64 },
    Currency { expected: String },
}

impl Ledger {
    /// What counts against the month containing `now`.
    pub fn spent(&self, now: i64) -> u64 {
        let (month, _) = month_bounds(now);
        self.charges
            .iter()
            .filter(|c| c.month == month)
            .map(|c| match c.status {
                ChargeStatus::Reserved | ChargeStatus::Charged | ChargeStatus::Refunded => {
                    c.amount.saturating_sub(c.refunded)
                }
                ChargeStatus::Released => 0,
            })
            .sum::<u64>()
            .saturating_add(self.usage_in(month))
    }

    /// Usage reported for the month starting at `month`, less what credits paid.
    pub fn usage_in(&self, month: i64) -> u64 {
        self.usage
            .iter()
            .filter(|u| u.month == month)
            .map(|u| u.amount.saturating_sub(u.credited))
            .fold(0, u64::saturating_add)
    }

    /// Credits left to draw at `now`.
    pub fn credit_left(&self, now: i64) -> u64 {
        self.credits
            .iter()
            .map(|c| c.left(now))
            .fold(0, u64::saturating_add)
    }

    /// Draws up to `amount` from the credits unexpired at `now`, those expiring first first;
    /// answers what was drawn.
    pub fn draw_credits(&mut self, amount: u64, now: i64) -> u64 {
        self.draw(amount, now).iter().map(|(_, n)| n).sum()
    }

    /// [`Ledger::draw_credits`], answering how much each credit gave.
    fn draw(&mut self, amount: u64, now: i64) -> Vec<(String, u64)> {
        let mut order: Vec<usize> = (0..self.credits.len()).collect();
        order.sort_by_key(|&i| self.credits[i].expires_at);
        let mut drawn = Vec::new();
        let mut total = 0;
        for i in order {
            if total == amount {
                break;
            }
            let c = &mut self.credits[i];
            let take = c.left(now).min(amount - total);
            if take > 0 {
                c.used += take;
                total += take;
                drawn.push((c.id.clone(), take));
            }
        }
        drawn
    }

    /// Takes `currency` (the catalog's) as the cap's when it differs and nothing counts against
    /// the month of `now` yet; returns the currency it replaced. The cap is an amount in the
    /// catalog's currency: an account created while the catalog priced in another currency
    /// moves to the new one at its next purchase, unless this month already holds charges in
    /// the old one (the month's total would mix currencies: [`Ledger::reserve`] then refuses).
    pub fn adopt_currency(&mut self, currency: &str, now: i64) -> Option<String> {
        if currency == self.currency || self.spent(now) > 0 {
            return None;
        }
        Some(std::mem::replace(&mut self.currency, currency.to_string()))
    }

    /// Reserves `amount` for `resource_id`, credits first: what credits unexpired at `now`
    /// cover is drawn from them, and only the rest (the payment method's part, answered) is
    /// reserved against the cap. Or says why not, drawing nothing.
    pub fn reserve(
        &mut self,
        id: &str,
        resource_id: &str,
        amount: u64,
        currency: &str,
        description: &str,
        now: i64,
    ) -> Result<u64, CapError> {
        if currency != self.currency {
            return Err(CapError::Currency {
                expected: self.currency.clone(),
            });
        }
        let credited = self.credit_left(now).min(amount);
        let card = amount - credited;
        let spent = self.spent(now);
        if spent.saturating_add(card) > self.cap {
            return Err(CapError::Exceeded {
                spent,
                cap: self.cap,
                amount: card,
            });
        }
        let credits = self.draw(credited, now);
        let mut charge = Charge::new(
            ChargeStatus::Reserved,
            id,
            resource_id,
            card,
            currency,
            description,
            now,
        );
        charge.credited = credited;
        charge.credits = credits;
        self.charges.push(charge);
        Ok(card)
    }

    /// Gives back the credits charge `id` drew (its purchase was refunded or never made).
    pub fn return_credits(&mut self, id: &str) {
        let Some(c) = self.charges.iter_mut().find(|c| c.id == id) else {
            return;
        };
        for (credit, n) in std::mem::take(&mut c.credits) {
            if let Some(k) = self.credits.iter_mut().find(|k| k.id == credit) {
                k.used = k.used.saturating_sub(n);
            }
        }
    }

    /// Records a charge made outside a reservation (a subscription renewal Stripe collected),
    /// counted in the month of `at`. Idempotent on `id`.
    pub fn record_charge(
        &mut self,
        id: &str,
        resource_id: &str,
        amount: u64,
        currency: &str,
        at: i64,
        description: &str,
    ) -> bool {
        if self.charges.iter().any(|c| c.id == id) {
            return false;
        }
        self.charges.push(Charge::new(
            ChargeStatus::Charged,
            id,
            resource_id,
            amount,
            currency,
            description,
            at,
        ));
        true
    }

    pub fn get_mut(&mut self, id: &str) -> Option<&mut Charge> {
        self.charges.iter_mut().find(|c| c.id == id)
    }

    /// Marks a reservation charged.
    pub fn settle(&mut self, id: &str, payment_intent: &str) {
        if let Some(c) = self.get_mut(id) {
            c.status = ChargeStatus::Charged;
            c.payment_intent = Some(payment_intent.to_string());
        }
    }

    /// Marks a reservation paid by credits alone (nothing for the payment method).
    pub fn settle_by_credits(&mut self, id: &str) {
        if let Some(c) = self.get_mut(id) {
            c.status = ChargeStatus::Charged;
        }
    }

    /// Releases a reservation that will never be charged, giving its credits back.
    pub fn release(&mut self, id: &str) {
        if self
            .get_mut(id)
            .is_some_and(|c| c.status == ChargeStatus::Reserved)
        {
            self.return_credits(id);
        }
        if let Some(c) = self.get_mut(id) {
            if c.status == ChargeStatus::Reserved {
                c.status = ChargeStatus::Released;
            }
        }
    }

    /// Thresholds newly crossed in the month of `now`, recorded so each fires once.
    pub fn new_alerts(&mut self, now: i64) -> Vec<u64> {
        let (month, _) = month_bounds(now);
        let spent = self.spent(now);
        let mut fired = Vec::new();
        for t in ALERTS {
            let reached = self.cap > 0 && spent * 100 >= self.cap * t;
            if reached && !self.alerts.contains(&(month, t)) {
                self.alerts.push((month, t));
                fired.push(t);
            }
        }
        fired
    }

    /// Drops what is older than 13 months.
    pub fn prune(&mut self, now: i64) {
        let horizon = now - 400 * 86_400;
        self.charges.retain(|c| c.month >= horizon);
        self.alerts.retain(|(m, _)| *m >= horizon);
        // Unsent meter events stay until they are sent or refused.
        self.usage
            .retain(|u| u.month >= horizon || u.meter.pending());
        self.credits.retain(|c| c.expires_at >= horizon);
    }
}

/// `$12.00` style text for an amount in cents.
pub fn format_amount(amount: u64, currency: &str) -> String {
    let symbol = match currency {
        "usd" => "$",
        "eur" => "€",
        "gbp" => "£",
        _ => "",
    };
    let text = format!("{}.{:02}", amount / 100, amount % 100);
    if symbol.is_empty() {
        format!("{text} {}", currency.to_uppercase())
    } else {
        format!("{symbol}{text}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_rfc3339;

    fn t(s: &str) -> i64 {
        parse_rfc3339(s).unwrap()
    }

    #[test]
    fn the_cap_refuses_the_charge_that_would_cross_it() {
        let mut l = Ledger::default();
        let now = t("2026-11-10T00:00:00Z");
        l.reserve("c1", "r1", 6_000, "usd", "", now).unwrap();
        l.reserve("c2", "r2", 4_000, "usd", "", now).unwrap();
        assert_eq!(l.spent(now), 10_000);
        assert_eq!(
            l.reserve("c3", "r3", 1, "usd", "", now),
            Err(CapError::Exceeded {
                spent: 10_000,
                cap: 10_000,
                amount: 1
            })
        );
        // Releasing a reservation frees room; charging keeps it counted.
        l.release("c2");
        l.settle("c1", "pi_1");
        assert_eq!(l.spent(now), 6_000);
        l.reserve("c3", "r3", 4_000, "usd", "", now).unwrap();
    }

    #[test]
    fn months_are_calendar_months_in_utc() {
        let mut l = Ledger::default();
        l.reserve("c1", "r1", 10_000, "usd", "", t("2026-11-30T23:59:59Z"))
            .unwrap();
        assert!(l
            .reserve("c2", "r2", 1, "usd", "", t("2026-11-30T23:59:59Z"))
            .is_err());
        l.reserve("c2", "r2", 10_000, "usd", "", t("2026-12-01T00:00:00Z"))
            .unwrap();
    }

    #[test]
    fn refunds_give_room_back() {
        let mut l = Ledger::default();
        let now = t("2026-11-10T00:00:00Z");
        l.reserve("c1", "r1", 10_000, "usd", "", now).unwrap();
        l.settle("c1", "pi_1");
        let c = l.get_mut("c1").unwrap();
        c.refunded = 2_500;
        c.status = ChargeStatus::Refunded;
        assert_eq!(l.spent(now), 7_500);
    }

    #[test]
    fn other_currencies_are_refused() {
        let mut l = Ledger::default();
        assert_eq!(
            l.reserve("c1", "r1", 1, "eur", "", 0),
            Err(CapError::Currency {
                expected: "usd".into()
            })
        );
    }

    #[test]
    fn the_catalogs_currency_is_adopted_while_the_month_is_empty() {
        let mut l = Ledger::default();
        let now = t("2026-11-10T00:00:00Z");
        assert_eq!(l.adopt_currency("usd", now), None);
        assert_eq!(l.adopt_currency("eur", now), Some("usd".into()));
        l.reserve("c1", "r1", 1_000, "eur", "", now).unwrap();
        // Once this month holds euros, another currency is refused, not mixed in.
        assert_eq!(l.adopt_currency("gbp", now), None);
        assert_eq!(
            l.reserve("c2", "r2", 1, "gbp", "", now),
            Err(CapError::Currency {
                expected: "eur".into()
            })
        );
        // A released reservation counts for nothing.
        l.release("c1");
        assert_eq!(l.adopt_currency("gbp", now), Some("eur".into()));
    }

    #[test]
    fn alerts_fire_once_per_threshold_and_month() {
        let mut l = Ledger::default();
        let now = t("2026-11-10T00:00:00Z");
        l.reserve("c1", "r1", 4_000, "usd", "", now).unwrap();
        assert!(l.new_alerts(now).is_empty());
        l.reserve("c2", "r2", 4_500, "usd", "", now).unwrap();
        assert_eq!(l.new_alerts(now), vec![50, 80]);
        assert!(l.new_alerts(now).is_empty());
        l.reserve("c3", "r3", 1_500, "usd", "", now).unwrap();
        assert_eq!(l.new_alerts(now), vec![100]);
        let next = t("2026-12-02T00:00:00Z");
        l.reserve("c4", "r4", 5_000, "usd", "", next).unwrap();
        assert_eq!(l.new_alerts(next), vec![50]);
    }

    #[test]
    fn a_zero_cap_refuses_everything_and_alerts_nothing() {
        let mut l = Ledger {
            cap: 0,
            ..Ledger::default()
        };
        assert!(l.reserve("c1", "r1", 1, "usd", "", 0).is_err());
        assert!(l.new_alerts(0).is_empty());
    }

    #[test]
    fn a_ledger_stored_before_usage_and_credits_reads_and_writes_back_the_same() {
        let old = r#"{"cap":10000,"currency":"usd","charges":[{"id":"c1","resource_id":"r1","amount":1200,"currency":"usd","month":1798761600,"status":"charged","created_at":1800000000,"refunded":0,"payment_intent":"pi_1","description":"domain"}],"alerts":[[1798761600,50]]}"#;
        let l: Ledger = serde_json::from_str(old).unwrap();
        assert!(l.usage.is_empty() && l.credits.is_empty());
        assert_eq!(serde_json::to_string(&l).unwrap(), old);
    }

    #[test]
    fn credits_are_drawn_soonest_expiry_first_and_not_after_they_expire() {
        let credit = |id: &str, amount: u64, expires_at: i64| Credit {
            id: id.into(),
            key: id.into(),
            fingerprint: String::new(),
            amount,
            currency: "usd".into(),
            reason: "startup".into(),
            granted_at: 0,
            expires_at,
            used: 0,
            stripe_grant: None,
            attempts: 0,
            next_at: 0,
            error: None,
        };
        let mut l = Ledger {
            credits: vec![credit("late", 500, 2_000), credit("soon", 300, 1_000)],
            ..Ledger::default()
        };
        assert_eq!(l.credit_left(0), 800);
        assert_eq!(l.draw_credits(400, 0), 400);
        assert_eq!((l.credits[1].used, l.credits[0].used), (300, 100));
        // After the first expires, only the second's rest is left.
        assert_eq!(l.credit_left(1_500), 400);
        assert_eq!(l.draw_credits(1_000, 1_500), 400);
        assert_eq!(l.draw_credits(10, 1_500), 0);
    }

    #[test]
    fn amounts_are_formatted_for_humans() {
        assert_eq!(format_amount(1200, "usd"), "$12.00");
        assert_eq!(format_amount(5, "eur"), "€0.05");
        assert_eq!(format_amount(100_050, "jpy"), "1000.50 JPY");
    }
}
