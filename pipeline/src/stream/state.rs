//! The stream processor's state: every order and parcel in play, the watermark, the
//! timers and the lane statistics, and the rules that change them. Pure: no I/O, no
//! clock (the caller passes the time when sources are idle).
//!
//! The promise this module keeps: the same set of events, arriving in any order within
//! the allowed lateness, ends in the same state and fires the same timers, because
//! - every order and parcel is a function of its set of events (see [`super::order`]);
//! - a parcel belongs to the order whose `order.shipped` names it, else to the order its
//!   scans name, decided from the events and not from who came first;
//! - a timer's verdict reads only events at or before its due time, and the watermark
//!   passes that time only once every such event has arrived (the lateness bound);
//! - timers fire in `(due, kind, subject)` order, and orders leave the state at whole-day
//!   watermark steps.

use std::collections::hash_map::Entry;
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::lanes::{LaneKey, LaneStats};
use super::order::{id_hash, shared_parcel_key, Checkout, Key, Mark, OrderState, OrderStatus, OrderView, ParcelState, Scan, ScanTexts, TextPool};
use super::time::{Timer, TimerKind, TimerSubject, Timers, Watermark};
use super::{HashMap, HashSet};
use crate::model::{CarrierScan, Event, EventBody, OrderDetail, ParcelStatus, Timestamp};

/// The knobs of the state machine (`[stream]` in the configuration).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamSettings {
    /// How late an event may arrive (behind the largest event time seen) and still be
    /// placed before any timer reads it.
    pub allowed_lateness: i64,
    /// A shipped parcel the carrier has not scanned as moving after this long fires
    /// `label_not_scanned`.
    pub label_scan_after: i64,
    /// A parcel not delivered and not scanned for this long fires `no_scan_for`.
    pub no_scan_after: i64,
    /// A parcel scanned this long ago that no `order.shipped` names fires `parcel_unclaimed`.
    pub unclaimed_after: i64,
    /// How long a delivered, completed, cancelled or returned order stays after its last
    /// event.
    pub retention: i64,
    /// How long any order stays after its last event, finished or not.
    pub max_idle: i64,
    /// How long an order may go without its `order.created` before it is flagged.
    pub missing_created_grace: i64,
}

impl Default for StreamSettings {
    fn default() -> Self {
        let hour = Timestamp::MICROS_PER_HOUR;
        let day = Timestamp::MICROS_PER_DAY;
        StreamSettings {
            allowed_lateness: hour,
            label_scan_after: 24 * hour,
            no_scan_after: 72 * hour,
            unclaimed_after: 48 * hour,
            retention: 30 * day,
            max_idle: 60 * day,
            missing_created_grace: 6 * hour,
        }
    }
}

/// What applying one event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// A new event, now part of the state.
    New,
    /// Seen before: nothing changed.
    Duplicate,
    /// Not about orders or parcels (tickets).
    Ignored,
}

/// A timer that fired: the input of the detectors. Identified by `(kind, subject, due_at)`,
/// which is the same in a live run and in any replay.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TimerFiring {
    pub due_at: i64,
    pub kind: TimerKind,
    /// The order id (`ship_by_passed`) or the parcel key `carrier/tracking_number`.
    pub subject: String,
    pub order_id: Option<String>,
    pub merchant_id: Option<String>,
}

/// Counters about the state, for logs and `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamCounters {
    pub applied: u64,
    pub duplicates: u64,
    /// Events that arrived behind the watermark (still applied).
    pub late: u64,
    pub evicted_orders: u64,
    /// Orders whose events turned out to name two merchants (see
    /// [`OrderState::conflicting_merchant_id`]).
    pub merchant_conflicts: u64,
}

/// What the state holds, in numbers: `orderpulse process` prints it, tests compare it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StateSummary {
    pub watermark: Option<String>,
    pub orders: usize,
    pub parcels: usize,
    /// Parcels whose scans no order claims (yet).
    pub unowned_parcels: usize,
    pub pending_timers: usize,
    pub statuses: BTreeMap<&'static str, usize>,
    pub lanes: Vec<LaneSummary>,
    pub counters: StreamCounters,
}

/// One lane's statistics, for people.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LaneSummary {
    pub lane: String,
    pub delivered: u64,
    pub on_time: u64,
    pub with_promise: u64,
    pub transit_p50_hours: Option<f64>,
    pub transit_p90_hours: Option<f64>,
}

/// Everything the stream processor knows.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamState {
    settings: StreamSettings,
    orders: HashMap<Key, OrderState>,
    /// Every parcel, by [`parcel_key`]; its owner (if any) lists it in `parcels`.
    parcels: HashMap<Key, ParcelState>,
    timers: Timers,
    lanes: BTreeMap<LaneKey, LaneStats>,
    watermark: Watermark,
    /// The last whole day (of the watermark) at which finished orders were let go.
    swept_day: Option<i64>,
    counters: StreamCounters,
    /// Orders whose derived state may have changed since [`StreamState::take_changes`]:
    /// checkpointed, so what a crash interrupted is still written out after a restart.
    changed: HashSet<Key>,
    /// Changed orders that left the state before their change was taken: their last
    /// state, so that it can still be written out.
    departed: Vec<DepartedOrder>,
    /// Where the daily sweep looks, so that it does not visit every order every day.
    sweep: SweepIndex,
    /// The long texts the state's scans and milestones share.
    #[serde(skip)]
    texts: TextPool,
}

/// The orders and parcels the daily eviction sweep must look at. An order cannot leave
/// before the retention after its latest event has run out, so young orders wait in
/// `due`, bucketed by the day of `own_last_event_at + retention`, and are not visited;
/// once past it they are checked (`aging`), and one whose parcels' scans came later
/// goes back to `due` until the retention after its latest scan. Only orders that are
/// past that too but not finished (they wait for `max_idle`) are checked at every sweep;
/// orders known only from scans get their first check at the next sweep. Which orders
/// leave is exactly what checking every order would give; the index only skips orders
/// that cannot leave yet. Arrival-dependent bookkeeping: not part of the state's equality.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct SweepIndex {
    /// Day (of the retention's end, rounded up) → orders that may leave from then on.
    due: BTreeMap<i64, Vec<Key>>,
    /// Orders checked at every sweep, until they leave or are found to wait longer.
    aging: HashSet<Key>,
    /// Parcels no order claims (they leave after `max_idle`).
    unowned: HashSet<Key>,
}

impl SweepIndex {
    /// Files an order for the first sweep at or after `not_before`.
    fn schedule(&mut self, order_id: Key, not_before: i64) {
        let day = (not_before + Timestamp::MICROS_PER_DAY - 1).div_euclid(Timestamp::MICROS_PER_DAY);
        self.due.entry(day).or_default().push(order_id);
    }
}

/// An order that left the hot state, with its parcels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DepartedOrder {
    pub order: OrderState,
    pub parcels: Vec<ParcelState>,
}

/// The orders to write out: ids of orders still in the state, and departed ones.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Changes {
    pub order_ids: Vec<Key>,
    pub departed: Vec<DepartedOrder>,
}

/// Equal in everything the events decide: orders and parcels (with the timers they have
/// pending), lanes and the watermark. Counters (duplicates, late arrivals), the change
/// log and the timer queue's cancelled leftovers depend on arrival order and timing, so
/// they are left out.
impl PartialEq for StreamState {
    fn eq(&self, other: &Self) -> bool {
        self.settings == other.settings
            && self.orders == other.orders
            && self.parcels == other.parcels
            && self.lanes == other.lanes
            && self.watermark.current() == other.watermark.current()
    }
}

impl StreamState {
    pub fn new(settings: StreamSettings) -> Self {
        StreamState {
            watermark: Watermark::new(settings.allowed_lateness),
            settings,
            orders: HashMap::default(),
            parcels: HashMap::default(),
            timers: Timers::default(),
            lanes: BTreeMap::new(),
            swept_day: None,
            counters: StreamCounters::default(),
            changed: Default::default(),
            departed: Vec::new(),
            sweep: SweepIndex::default(),
            texts: TextPool::default(),
        }
    }

    pub fn settings(&self) -> &StreamSettings {
        &self.settings
    }

    pub fn watermark(&self) -> Option<i64> {
        self.watermark.current()
    }

    pub fn counters(&self) -> StreamCounters {
        self.counters
    }

    pub fn order_count(&self) -> usize {
        self.orders.len()
    }

    pub fn parcel_count(&self) -> usize {
        self.parcels.len()
    }

    pub fn pending_timers(&self) -> usize {
        self.timers.len()
    }

    pub fn lanes(&self) -> &BTreeMap<LaneKey, LaneStats> {
        &self.lanes
    }

    pub fn order(&self, order_id: &str) -> Option<&OrderState> {
        self.orders.get(order_id)
    }

    pub fn orders(&self) -> impl Iterator<Item = &OrderState> {
        self.orders.values()
    }

    pub fn parcel(&self, key: &str) -> Option<&ParcelState> {
        self.parcels.get(key)
    }

    /// An order's parcels, for an [`OrderView`].
    pub fn parcels_of(&self, order: &OrderState) -> Vec<&ParcelState> {
        order.parcels.iter().filter_map(|key| self.parcels.get(key)).collect()
    }

    /// The orders that changed since the last call, in no particular order (the
    /// `order_status` writer orders its rows itself). The set keeps its room for the next
    /// round instead of growing again from nothing.
    pub fn take_changes(&mut self) -> Changes {
        let order_ids: Vec<Key> = self.changed.drain().collect();
        Changes { order_ids, departed: std::mem::take(&mut self.departed) }
    }

    /// Puts changes back (their output could not be written).
    pub fn restore_changes(&mut self, changes: Changes) {
        self.changed.extend(changes.order_ids);
        self.departed.extend(changes.departed);
    }

    /// Shares equal scan texts again after the state was read from a checkpoint, which
    /// holds every scan's texts on their own (see [`TextPool`]).
    pub fn share_restored_texts(&mut self) {
        for scan in self.parcels.values_mut().flat_map(|parcel| parcel.scans.iter_mut()) {
            scan.texts = self.texts.share_scan_texts(&scan.texts);
        }
    }

    /// Applies one event (taken by value: its texts move into the state).
    pub fn apply(&mut self, event: Event) -> Applied {
        let at = event.occurred_at.micros;
        let stream = event.stream();
        let id = id_hash(&event.event_id);
        let Event { occurred_at, merchant_id, body, .. } = event;
        let applied = match body {
            EventBody::Order(order_event) => self.apply_order_event(order_event.order_id, order_event.detail, occurred_at, merchant_id, id),
            EventBody::Carrier(scan) => self.apply_scan(scan, occurred_at, id),
            EventBody::Ticket(_) => return Applied::Ignored,
        };
        match applied {
            Applied::New => {
                self.counters.applied += 1;
                if self.watermark.observe(stream, at) {
                    self.counters.late += 1;
                }
            }
            Applied::Duplicate => self.counters.duplicates += 1,
            Applied::Ignored => {}
        }
        applied
    }

    fn apply_order_event(&mut self, order_id: String, detail: OrderDetail, at: Timestamp, merchant_id: Option<String>, id: u64) -> Applied {
        use super::order::keep_earliest;
        let order_id = Key::from(order_id);
        let order = match self.orders.get_mut(&order_id) {
            Some(order) => order,
            None => self.orders.entry(order_id.clone()).or_insert_with(|| OrderState::new(&order_id)),
        };
        let first_own_event = order.own_last_event_at.is_none();
        if !order.first_sighting(id, at.micros) {
            return Applied::Duplicate;
        }
        if first_own_event {
            self.sweep.schedule(order_id.clone(), at.micros + self.settings.retention);
        }
        if order.name_merchant(merchant_id.as_deref()) {
            self.counters.merchant_conflicts += 1;
        }
        let texts = &mut self.texts;
        let mut mark = |detail: Option<String>| Mark { at, id, detail: detail.map(|d| texts.key(d)) };
        let m = &mut order.milestones;
        match detail {
            OrderDetail::Created(created) => {
                let created = *created;
                if let Some(ship_by) = created.ship_by {
                    self.timers.set(&mut order.timers, ship_by.micros, TimerKind::ShipByPassed, &order_id);
                }
                order.set_checkout(Checkout {
                    at,
                    id,
                    channel: created.channel.map(Key::from),
                    customer_country: created.customer.country.map(Key::from),
                    customer_region: created.customer.region.map(Key::from),
                    customer_postal_code: created.customer.postal_code.map(Key::from),
                    notify: created.customer.notify,
                    items: created.items,
                    total: created.total,
                    ship_by: created.ship_by,
                    promised_delivery: created.promised_delivery,
                });
            }
            OrderDetail::Paid => keep_earliest(&mut m.paid, mark(None)),
            OrderDetail::FulfillmentStarted { warehouse } => keep_earliest(&mut m.fulfillment_started, mark(warehouse)),
            OrderDetail::Completed => keep_earliest(&mut m.completed, mark(None)),
            OrderDetail::Cancelled { reason } => keep_earliest(&mut m.cancelled, mark(reason)),
            OrderDetail::ReturnRequested { reason } => keep_earliest(&mut m.return_requested, mark(reason)),
            OrderDetail::Shipped(shipment) => {
                let key = shared_parcel_key(&self.parcels, &shipment.carrier, &shipment.tracking_number);
                let parcel = match self.parcels.get_mut(&key) {
                    Some(parcel) => parcel,
                    None => new_parcel(&mut self.parcels, &mut self.sweep, &key, &shipment.carrier, &shipment.tracking_number),
                };
                let before = parcel.owner_key().cloned();
                parcel.ship(mark(shipment.service_level), &order_id);
                if let Some(shipped) = &parcel.shipped {
                    self.timers.set(&mut parcel.timers, shipped.at.micros + self.settings.label_scan_after, TimerKind::LabelNotScanned, &key);
                    // Claimed in time: the wait its first scan started is over.
                    if let Some(unclaimed_due) = parcel.scans.first().map(|s| s.at.micros + self.settings.unclaimed_after)
                        && shipped.at.micros <= unclaimed_due
                    {
                        self.timers.cancel(&mut parcel.timers, unclaimed_due, TimerKind::ParcelUnclaimed);
                    }
                }
                self.reassign(&key, before);
            }
        }
        self.changed.insert(order_id);
        Applied::New
    }

    fn apply_scan(&mut self, scan: CarrierScan, occurred_at: Timestamp, id: u64) -> Applied {
        // Most scans are for a parcel already here: its key is shared, not built again.
        let key = shared_parcel_key(&self.parcels, &scan.carrier, &scan.tracking_number);
        let parcel = match self.parcels.get_mut(&key) {
            Some(parcel) => parcel,
            None => new_parcel(&mut self.parcels, &mut self.sweep, &key, &scan.carrier, &scan.tracking_number),
        };
        let at = occurred_at.micros;
        let status = scan.status;
        let location = scan.location;
        let Some(place) = parcel.add_scan(Scan {
            at: occurred_at,
            id,
            status,
            sub_status: scan.sub_status,
            texts: self.texts.scan_texts(ScanTexts {
                raw_status: scan.raw_status,
                description: scan.description,
                city: location.city,
                region: location.region,
                country: location.country,
            }),
            estimated_delivery: scan.estimated_delivery,
        }) else {
            return Applied::Duplicate;
        };
        // Only `no_scan_for` timers that will fire stay pending (most scans are followed
        // by another within the hours): this scan may end the wait of the one before it,
        // and starts its own unless a later scan already came in time.
        let no_scan_after = self.settings.no_scan_after;
        if let Some(before) = place.checked_sub(1).and_then(|i| parcel.scans.get(i)).map(|s| s.at.micros + no_scan_after)
            && !parcel.quiet_at(before, no_scan_after)
        {
            self.timers.cancel(&mut parcel.timers, before, TimerKind::NoScanFor);
        }
        let quiet_due = at + no_scan_after;
        if status == ParcelStatus::Delivered {
            self.timers.set(&mut parcel.timers, at, TimerKind::LaneDelivery, &key);
        } else if parcel.quiet_at(quiet_due, no_scan_after) {
            self.timers.set(&mut parcel.timers, quiet_due, TimerKind::NoScanFor, &key);
        }
        // The earliest scan starts the wait for a shipment to claim the parcel; one that
        // arrives later but happened earlier moves the wait (so the pending timers depend
        // on the events only, not on their arrival order).
        if parcel.scans.first().is_some_and(|first| first.id == id) {
            let unclaimed_after = self.settings.unclaimed_after;
            if let Some(previous) = parcel.scans.get(1) {
                self.timers.cancel(&mut parcel.timers, previous.at.micros + unclaimed_after, TimerKind::ParcelUnclaimed);
            }
            if parcel.shipped.as_ref().is_none_or(|s| s.at.micros > at + unclaimed_after) {
                self.timers.set(&mut parcel.timers, at + unclaimed_after, TimerKind::ParcelUnclaimed, &key);
            }
        }
        // The smallest order id any scan names is kept (whatever the arrival order); it
        // decides the owner only while no shipment claims the parcel.
        let renamed = scan.order_id.filter(|o| parcel.order_hint.as_deref().is_none_or(|h| o.as_str() < h));
        match renamed {
            None => {
                if let Some(owner) = parcel.owner_key() {
                    self.changed.insert(owner.clone());
                }
            }
            Some(order_id) => {
                let before = parcel.owner_key().cloned();
                parcel.hint_order(&order_id);
                self.reassign(&key, before);
                if let Some(owner) = self.parcels.get(&key).and_then(|p| p.owner_key()) {
                    self.changed.insert(owner.clone());
                }
            }
        }
        Applied::New
    }

    /// Moves a parcel to its owner after an event may have changed who that is.
    fn reassign(&mut self, key: &Key, before: Option<Key>) {
        let after = self.parcels.get(key).and_then(|p| p.owner_key()).cloned();
        if before == after {
            return;
        }
        if let Some(old) = before.clone() {
            if let Some(order) = self.orders.get_mut(&old) {
                order.disown_parcel(key);
                if order.is_empty() {
                    if let Some(order) = self.orders.remove(&old) {
                        self.timers.forget(&order.timers);
                    }
                } else {
                    // Its latest event may now be earlier: the sweep looks at it again.
                    self.sweep.aging.insert(old.clone());
                }
            }
            self.changed.insert(old);
        }
        if let Some(new) = after {
            if before.is_none() {
                self.sweep.unowned.remove(key);
            }
            let order = match self.orders.entry(new.clone()) {
                Entry::Occupied(entry) => entry.into_mut(),
                Entry::Vacant(entry) => {
                    // Known from scans only: no own events to wait for.
                    self.sweep.aging.insert(new.clone());
                    entry.insert(OrderState::new(&new))
                }
            };
            order.own_parcel(key);
            self.changed.insert(new);
        }
    }

    /// Says that an input has had nothing new for a while: it stops holding the
    /// watermark back.
    pub fn set_input_idle(&mut self, input: crate::model::Stream) {
        self.watermark.set_idle(input);
    }

    /// Advances the watermark with the clock while the sources are idle.
    pub fn advance_with_clock(&mut self, now_micros: i64) {
        self.watermark.advance_with_clock(now_micros);
    }

    /// Fires every timer the watermark has passed, in `(due, kind, subject)` order, and
    /// lets finished orders go at whole-day steps. Returns the firings for detectors.
    pub fn fire_due_timers(&mut self) -> Vec<TimerFiring> {
        let Some(watermark) = self.watermark.current() else {
            return Vec::new();
        };
        let mut fired = Vec::new();
        while let Some(timer) = self.timers.next_due(watermark) {
            if let Some(firing) = self.fire(timer) {
                fired.push(firing);
            }
        }
        let day = watermark.div_euclid(Timestamp::MICROS_PER_DAY);
        if self.swept_day.is_none_or(|swept| day > swept) {
            self.evict_until(day * Timestamp::MICROS_PER_DAY);
            self.swept_day = Some(day);
        }
        fired
    }

    /// Takes a queue entry that came due: if it is a timer still pending, decides it from
    /// the events at or before its due time only. The subject is looked up once, for
    /// both (most entries are timers that do not fire, or stale ones).
    fn fire(&mut self, timer: Timer) -> Option<TimerFiring> {
        let settings = &self.settings;
        let due = timer.due;
        let fires = match timer.kind {
            TimerKind::ShipByPassed => {
                let order = pending(&mut self.timers, &mut self.orders, &timer)?;
                let checkout = order.checkout.as_ref()?;
                let cancelled = order.milestones.cancelled.as_ref().is_some_and(|m| m.at.micros <= due);
                // The order's own fields first: its parcels are looked up only if they decide.
                checkout.ship_by.is_some_and(|s| s.micros == due)
                    && !cancelled
                    && !order.parcels.iter().filter_map(|k| self.parcels.get(k)?.shipped.as_ref()).any(|m| m.at.micros <= due)
            }
            TimerKind::LabelNotScanned => {
                let parcel = pending(&mut self.timers, &mut self.parcels, &timer)?;
                let shipped_at = parcel.shipped.as_ref()?.at.micros;
                let moved =
                    parcel.scans.iter().take_while(|s| s.at.micros <= due).any(|s| !matches!(s.status, ParcelStatus::InfoReceived | ParcelStatus::Unknown));
                shipped_at + settings.label_scan_after == due && !moved
            }
            TimerKind::NoScanFor => pending(&mut self.timers, &mut self.parcels, &timer)?.quiet_at(due, settings.no_scan_after),
            TimerKind::ParcelUnclaimed => {
                let parcel = pending(&mut self.timers, &mut self.parcels, &timer)?;
                let first = parcel.scans.first()?.at.micros;
                first + settings.unclaimed_after == due && parcel.shipped.as_ref().is_none_or(|s| s.at.micros > due)
            }
            TimerKind::LaneDelivery => {
                let parcel = pending(&mut self.timers, &mut self.parcels, &timer)?;
                count_delivery(&mut self.lanes, &self.orders, parcel, due);
                false
            }
        };
        if !fires {
            return None;
        }
        let order_id = match timer.kind {
            TimerKind::ShipByPassed => Some(timer.subject.to_string()),
            _ => self.parcels.get(&timer.subject).and_then(|p| p.owner()).map(str::to_owned),
        };
        let merchant_id = order_id.as_deref().and_then(|o| self.orders.get(o)).and_then(|o| o.sole_merchant()).map(str::to_owned);
        Some(TimerFiring { due_at: due, kind: timer.kind, subject: timer.subject.to_string(), order_id, merchant_id })
    }

    /// Lets go of orders (and their parcels) with nothing more to wait for: finished and
    /// quiet for the retention, or quiet for `max_idle`. Unowned parcels go after
    /// `max_idle` too.
    fn evict_until(&mut self, threshold: i64) {
        let (retention, max_idle) = (self.settings.retention, self.settings.max_idle);
        // Orders whose own events' retention ran out join the ones checked every sweep.
        let day = threshold.div_euclid(Timestamp::MICROS_PER_DAY);
        let later = self.sweep.due.split_off(&(day + 1));
        for order_id in std::mem::replace(&mut self.sweep.due, later).into_values().flatten() {
            let Some(order) = self.orders.get(&order_id) else { continue };
            match order.own_last_event_at {
                Some(own) if own + retention > threshold => self.sweep.schedule(order_id, own + retention),
                _ => {
                    self.sweep.aging.insert(order_id);
                }
            }
        }
        let mut leaving = Vec::new();
        let mut not_yet = Vec::new();
        let mut scratch = Vec::new();
        self.sweep.aging.retain(|order_id| {
            let Some(order) = self.orders.get(order_id) else { return false };
            scratch.clear();
            scratch.extend(order.parcels.iter().filter_map(|key| self.parcels.get(key)));
            let view = OrderView { order, parcels: &scratch };
            let Some(last) = view.last_event_at() else { return true };
            // No order leaves sooner than the retention after its latest event, and that
            // only moves later (an order whose parcel is taken from it is checked again,
            // see `reassign`): until then it waits in `due` instead of being checked daily.
            if last + retention > threshold {
                not_yet.push((order_id.clone(), last + retention));
                return false;
            }
            let keep_for = if view.status().is_final() { retention } else { max_idle };
            if last + keep_for <= threshold {
                leaving.push(order_id.clone());
                return false;
            }
            true
        });
        for (order_id, not_before) in not_yet {
            self.sweep.schedule(order_id, not_before);
        }
        for order_id in leaving {
            let Some(order) = self.orders.remove(&order_id) else { continue };
            self.timers.forget(&order.timers);
            // Its parcels leave with it, and their timers.
            let parcels: Vec<ParcelState> = order.parcels.iter().filter_map(|key| self.parcels.remove(key)).collect();
            for parcel in &parcels {
                self.timers.forget(&parcel.timers);
            }
            if self.changed.remove(&order_id) {
                self.departed.push(DepartedOrder { order, parcels });
            }
            self.counters.evicted_orders += 1;
        }
        let (parcels, timers) = (&mut self.parcels, &mut self.timers);
        self.sweep.unowned.retain(|key| {
            let stale = parcels.get(key).is_none_or(|p| p.owner().is_none() && p.last_event_at().is_none_or(|last| last + max_idle <= threshold));
            if stale && let Some(parcel) = parcels.remove(key) {
                timers.forget(&parcel.timers);
            }
            !stale
        });
    }

    /// The status of an order, if it is in the state.
    pub fn status_of(&self, order_id: &str) -> Option<OrderStatus> {
        let order = self.orders.get(order_id)?;
        Some(OrderView { order, parcels: &self.parcels_of(order) }.status())
    }

    pub fn summary(&self) -> StateSummary {
        let mut statuses = BTreeMap::new();
        for order in self.orders.values() {
            let status = OrderView { order, parcels: &self.parcels_of(order) }.status();
            *statuses.entry(status.as_str()).or_insert(0) += 1;
        }
        let lanes = self
            .lanes
            .iter()
            .map(|(key, stats)| LaneSummary {
                lane: key.to_string(),
                delivered: stats.delivered,
                on_time: stats.on_time,
                with_promise: stats.with_promise,
                transit_p50_hours: stats.transit_quantile(0.5),
                transit_p90_hours: stats.transit_quantile(0.9),
            })
            .collect();
        StateSummary {
            watermark: self.watermark().map(|w| Timestamp::from_micros_utc(w).to_rfc3339()),
            orders: self.orders.len(),
            parcels: self.parcels.len(),
            unowned_parcels: self.unowned_parcels().count(),
            pending_timers: self.timers.len(),
            statuses,
            lanes,
            counters: self.counters,
        }
    }

    /// Parcels whose scans no order claims yet, with their keys.
    pub fn unowned_parcels(&self) -> impl Iterator<Item = (&Key, &ParcelState)> {
        self.parcels.iter().filter(|(_, p)| p.owner().is_none())
    }
}

/// The order or parcel a due queue entry is about, if the entry is a timer it still holds
/// (which [`Timers::fire`] takes: the timer fires).
fn pending<'a, S: TimerSubject>(timers: &mut Timers, subjects: &'a mut HashMap<Key, S>, timer: &Timer) -> Option<&'a mut S> {
    let subject = subjects.get_mut(&timer.subject)?;
    timers.fire(subject.pending_timers(), timer).then_some(subject)
}

/// Counts a delivered parcel in its lane, if `due` is its first delivery and its lane
/// is known (pickup scan, service level, customer region).
fn count_delivery(lanes: &mut BTreeMap<LaneKey, LaneStats>, orders: &HashMap<Key, OrderState>, parcel: &ParcelState, due: i64) -> Option<()> {
    let delivered = parcel.first(ParcelStatus::Delivered)?;
    if delivered.at.micros != due {
        return None;
    }
    let order = orders.get(parcel.owner()?)?;
    let checkout = order.checkout.as_ref()?;
    let lane = LaneKey {
        carrier: parcel.carrier.clone(),
        service_level: Key::new(parcel.service_level()?),
        origin: parcel.origin()?,
        destination: checkout.destination()?,
    };
    let transit = parcel.first(ParcelStatus::InTransit).map(|pickup| (due - pickup.at.micros) as f64 / Timestamp::MICROS_PER_HOUR as f64);
    let on_time = checkout.promised_delivery.map(|w| due <= w.to.micros);
    lanes.entry(lane).or_default().record(transit, on_time);
    Some(())
}

/// A new parcel under `key`: nobody owns it yet.
fn new_parcel<'a>(parcels: &'a mut HashMap<Key, ParcelState>, sweep: &mut SweepIndex, key: &Key, carrier: &str, tracking_number: &str) -> &'a mut ParcelState {
    sweep.unowned.insert(key.clone());
    parcels.entry(key.clone()).or_insert_with(|| ParcelState::new(carrier, tracking_number))
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::model::{decode_line, DecodeLimits};
    use crate::source::simulator::{Scenario, Simulator};

    const HOUR: i64 = Timestamp::MICROS_PER_HOUR;
    /// 2026-11-20T00:00:00Z.
    const T0: i64 = 1_795_132_800_000_000;

    fn time(hours: i64) -> String {
        Timestamp::from_micros_utc(T0 + hours * HOUR).to_rfc3339()
    }

    fn event(json: serde_json::Value) -> Event {
        decode_line(json.to_string().as_bytes(), &DecodeLimits::default()).expect("a valid test event")
    }

    fn created(order: &str, hours: i64, ship_by_hours: i64) -> Event {
        event(serde_json::json!({
            "event_id": format!("{order}-created"), "type": "order.created", "occurred_at": time(hours),
            "merchant_id": "m-1", "order_id": order, "ship_by": time(ship_by_hours),
            "customer": {"country": "DE", "region": "BE"},
            "promised_delivery": {"from": time(48), "to": time(72)},
        }))
    }

    fn shipped(order: &str, tracking: &str, hours: i64) -> Event {
        event(serde_json::json!({
            "event_id": format!("{order}-shipped-{tracking}"), "type": "order.shipped", "occurred_at": time(hours),
            "merchant_id": "m-1", "order_id": order, "carrier": "dhl", "tracking_number": tracking, "service_level": "express",
        }))
    }

    fn scan(tracking: &str, hours: i64, status: &str, order: Option<&str>) -> Event {
        let mut json = serde_json::json!({
            "event_id": format!("{tracking}-{hours}-{status}"), "type": "carrier.scan", "occurred_at": time(hours),
            "carrier": "dhl", "tracking_number": tracking, "status": status,
            "location": {"city": "Leipzig", "country": "DE", "region": "SN"},
        });
        if let Some(order) = order {
            json["order_id"] = order.into();
        }
        event(json)
    }

    fn cancelled(order: &str, hours: i64) -> Event {
        event(serde_json::json!({
            "event_id": format!("{order}-cancelled"), "type": "order.cancelled", "occurred_at": time(hours),
            "merchant_id": "m-1", "order_id": order, "reason": "customer",
        }))
    }

    /// Applies the events in order, advancing the watermark after each, and then lets the
    /// watermark reach `until` hours with the clock. Returns the state and what fired.
    fn run(events: &[Event], until: i64) -> (StreamState, Vec<(TimerKind, String, i64)>) {
        let mut state = StreamState::new(StreamSettings::default());
        let mut fired = Vec::new();
        for e in events {
            state.apply(e.clone());
            fired.extend(state.fire_due_timers());
        }
        state.advance_with_clock(T0 + until * HOUR + state.settings().allowed_lateness);
        fired.extend(state.fire_due_timers());
        let fired = fired.into_iter().map(|f| (f.kind, f.subject, (f.due_at - T0) / HOUR)).collect();
        (state, fired)
    }

    #[test]
    fn timers_fire_from_the_events_at_or_before_their_due_time() {
        use TimerKind::*;
        let never_shipped = vec![created("o1", 0, 24)];
        let shipped_in_time = vec![created("o1", 0, 24), shipped("o1", "T1", 10), scan("T1", 12, "in_transit", None), scan("T1", 30, "delivered", None)];
        let shipped_late = vec![created("o1", 0, 24), shipped("o1", "T1", 30), scan("T1", 31, "in_transit", None), scan("T1", 40, "delivered", None)];
        let cancelled_first = vec![created("o1", 0, 24), cancelled("o1", 5)];
        let label_only = vec![created("o1", 0, 24), shipped("o1", "T1", 10), scan("T1", 10, "info_received", None)];
        let stalls_twice = vec![
            created("o1", 0, 24),
            shipped("o1", "T1", 1),
            scan("T1", 2, "in_transit", None),
            scan("T1", 100, "in_transit", None),
            scan("T1", 300, "exception", None),
        ];
        let unclaimed = vec![scan("T2", 5, "in_transit", None), scan("T2", 3, "info_received", Some("o2"))];
        let claimed_late = vec![scan("T2", 3, "info_received", None), created("o2", 0, 80), shipped("o2", "T2", 55)];
        let claimed_in_time = vec![scan("T2", 3, "info_received", None), scan("T2", 20, "in_transit", None), created("o2", 0, 80), shipped("o2", "T2", 1)];
        let cases: Vec<(&str, Vec<Event>, i64, Vec<(TimerKind, &str, i64)>)> = vec![
            ("never shipped", never_shipped, 30, vec![(ShipByPassed, "o1", 24)]),
            ("shipped in time", shipped_in_time, 200, vec![]),
            ("shipped after ship_by", shipped_late, 200, vec![(ShipByPassed, "o1", 24)]),
            ("cancelled before ship_by", cancelled_first, 30, vec![]),
            ("label never scanned", label_only, 100, vec![(LabelNotScanned, "dhl/T1", 34), (NoScanFor, "dhl/T1", 82)]),
            ("a stall per gap, and one open", stalls_twice, 400, vec![(NoScanFor, "dhl/T1", 74), (NoScanFor, "dhl/T1", 172), (NoScanFor, "dhl/T1", 372)]),
            ("scans no shipment claims", unclaimed, 60, vec![(ParcelUnclaimed, "dhl/T2", 51)]),
            ("claimed only after the wait", claimed_late, 60, vec![(ParcelUnclaimed, "dhl/T2", 51)]),
            ("claimed in time, shipment arriving last", claimed_in_time, 60, vec![]),
        ];
        for (name, events, until, expected) in cases {
            let (_, fired) = run(&events, until);
            let expected: Vec<_> = expected.into_iter().map(|(k, s, h)| (k, s.to_owned(), h)).collect();
            assert_eq!(fired, expected, "{name}");
        }
    }

    #[test]
    fn only_timers_that_can_fire_stay_pending() {
        let in_order = [scan("T1", 2, "in_transit", None), scan("T1", 10, "in_transit", None), scan("T1", 20, "out_for_delivery", None)];
        let shuffled = [in_order[2].clone(), in_order[0].clone(), in_order[1].clone()];
        let (a, _) = run(&in_order, 21);
        let (b, _) = run(&shuffled, 21);
        assert_eq!(a, b);
        // The wait after the last scan (20 + 72 h) and the one for a shipment to claim
        // the parcel (2 + 48 h); the waits the later scans ended are gone.
        assert_eq!(a.pending_timers(), 2);
        let delivered = [in_order[0].clone(), scan("T1", 30, "delivered", None)];
        let (c, fired) = run(&delivered, 200);
        assert_eq!(fired, [(TimerKind::ParcelUnclaimed, "dhl/T1".to_owned(), 50)]);
        assert_eq!(c.pending_timers(), 0);
    }

    #[test]
    fn scans_before_their_shipment_join_the_order() {
        let events = [scan("T1", 12, "in_transit", None), created("o1", 0, 24), shipped("o1", "T1", 10)];
        let (state, _) = run(&events, 13);
        let order = state.order("o1").expect("the order");
        assert_eq!(order.parcels, ["dhl/T1"]);
        assert_eq!(state.status_of("o1"), Some(OrderStatus::InTransit));
        assert_eq!(state.unowned_parcels().count(), 0);
    }

    #[test]
    fn a_shipment_outranks_the_order_id_a_scan_names() {
        let forward = [scan("T1", 12, "in_transit", Some("wrong")), created("o1", 0, 24), shipped("o1", "T1", 10)];
        let backward = [shipped("o1", "T1", 10), created("o1", 0, 24), scan("T1", 12, "in_transit", Some("wrong"))];
        let (a, _) = run(&forward, 13);
        let (b, _) = run(&backward, 13);
        assert_eq!(a, b);
        assert!(a.order("wrong").is_none(), "the order only the scan named is gone");
        assert_eq!(a.order("o1").map(|o| o.parcels.len()), Some(1));
    }

    #[test]
    fn unknown_parcels_and_missing_orders_are_kept() {
        let events = [scan("T9", 1, "in_transit", None), scan("T8", 1, "in_transit", Some("o7"))];
        let (state, _) = run(&events, 20);
        assert_eq!(state.unowned_parcels().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["dhl/T9"]);
        let order = state.order("o7").expect("an order named by a scan alone");
        let parcels = state.parcels_of(order);
        let view = OrderView { order, parcels: &parcels };
        assert_eq!(view.status(), OrderStatus::InTransit);
        assert_eq!(view.flags(state.watermark(), state.settings().missing_created_grace), [super::super::order::Flag::MissingOrderCreated]);
    }

    #[test]
    fn an_order_id_two_merchants_use_is_flagged_and_belongs_to_neither() {
        let other_merchant = event(serde_json::json!({
            "event_id": "o1-created-elsewhere", "type": "order.created", "occurred_at": time(1),
            "merchant_id": "m-0", "order_id": "o1", "ship_by": time(24),
        }));
        let mut state = StreamState::new(StreamSettings::default());
        for e in [created("o1", 0, 24), other_merchant.clone(), other_merchant, created("o2", 0, 24)] {
            state.apply(e);
        }
        assert_eq!(state.counters().merchant_conflicts, 1, "counted once, duplicates aside");
        let order = state.order("o1").expect("kept");
        assert_eq!((order.merchant_id.as_deref(), order.conflicting_merchant_id.as_deref()), (Some("m-0"), Some("m-1")));
        state.advance_with_clock(T0 + 30 * HOUR + state.settings().allowed_lateness);
        let fired = state.fire_due_timers();
        let merchants: Vec<_> = fired.iter().map(|f| (f.subject.as_str(), f.merchant_id.as_deref())).collect();
        assert_eq!(merchants, [("o1", None), ("o2", Some("m-1"))], "the conflicted order's firing names no merchant");

        let mut changes = state.take_changes();
        changes.order_ids.sort();
        let batch = super::super::output::order_status_batch(&state, &changes).expect("a batch");
        let column = |name: &str| batch.column_by_name(name).expect(name).as_any().downcast_ref::<arrow::array::StringArray>().expect(name).clone();
        let (orders, merchants, flags) = (column("order_id"), column("merchant_id"), column("flags"));
        let row = |order: &str| (0..batch.num_rows()).find(|&i| orders.value(i) == order).expect(order);
        let (conflicted, plain) = (row("o1"), row("o2"));
        assert!(arrow::array::Array::is_null(&merchants, conflicted), "no merchant's row");
        assert!(flags.value(conflicted).split(',').any(|f| f == "merchant_conflict"), "{}", flags.value(conflicted));
        assert_eq!(merchants.value(plain), "m-1");
    }

    #[test]
    fn duplicates_change_nothing_and_are_counted() {
        let events =
            [created("o1", 0, 24), shipped("o1", "T1", 2), shipped("o1", "T1", 2), scan("T1", 3, "in_transit", None), scan("T1", 3, "in_transit", None)];
        let (state, _) = run(&events, 4);
        assert_eq!(state.counters().duplicates, 2);
        assert_eq!(state.counters().applied, 3);
        assert_eq!(state.parcel("dhl/T1").map(|p| p.scans.len()), Some(1));
    }

    #[test]
    fn a_delivery_counts_once_in_its_lane_when_the_watermark_passes_it() {
        let events = [
            created("o1", 0, 24),
            shipped("o1", "T1", 2),
            scan("T1", 4, "in_transit", None),
            scan("T1", 40, "delivered", None),
            scan("T1", 41, "delivered", None),
        ];
        let (state, _) = run(&events[..4], 39);
        assert!(state.lanes().is_empty(), "not final yet");
        let (state, _) = run(&events, 60);
        let (lane, stats) = state.lanes().iter().next().expect("one lane");
        assert_eq!(lane.to_string(), "dhl/express DE-SN > DE-BE");
        assert_eq!((stats.delivered, stats.on_time, stats.with_promise), (1, 1, 1));
        let p50 = stats.transit_quantile(0.5).unwrap_or_default();
        assert!((p50 - 36.0).abs() < 0.5, "{p50}");
    }

    #[test]
    fn finished_orders_leave_after_the_retention() {
        let events = [created("o1", 0, 24), shipped("o1", "T1", 2), scan("T1", 4, "in_transit", None), scan("T1", 40, "delivered", None), created("o2", 1, 24)];
        let retention_hours = StreamSettings::default().retention / HOUR;
        let (state, _) = run(&events, 40 + retention_hours + 24);
        assert!(state.order("o1").is_none());
        assert!(state.parcel("dhl/T1").is_none());
        assert!(state.order("o2").is_some(), "an unfinished order stays until max_idle");
        assert_eq!(state.counters().evicted_orders, 1);
    }

    #[test]
    fn the_sweep_lets_go_of_every_order_it_should_and_no_other() {
        // Short retention over ten simulated days: many orders leave, some unfinished ones stay.
        let day = Timestamp::MICROS_PER_DAY;
        let settings = StreamSettings { retention: 2 * day, max_idle: 4 * day, ..StreamSettings::default() };
        let scenario = Scenario { seed: 7, days: 10, orders_per_day: 60.0, ..Scenario::default() };
        let mut events: Vec<Event> = Simulator::new(scenario).expect("valid scenario").events().collect();
        events.sort_by_key(|e| e.occurred_at.micros);
        let mut state = StreamState::new(settings.clone());
        for chunk in events.chunks(97) {
            for e in chunk {
                state.apply(e.clone());
            }
            state.fire_due_timers();
        }
        let threshold = state.swept_day.expect("swept") * day;
        assert!(state.counters().evicted_orders > 100, "{:?}", state.counters());
        for order in state.orders() {
            let parcels = state.parcels_of(order);
            let view = OrderView { order, parcels: &parcels };
            let keep_for = if view.status().is_final() { settings.retention } else { settings.max_idle };
            let last = view.last_event_at().expect("an order has events");
            assert!(last + keep_for > threshold, "order {} should have left", order.order_id);
        }
        for (key, parcel) in state.unowned_parcels() {
            assert!(parcel.last_event_at().is_some_and(|last| last + settings.max_idle > threshold), "parcel {key} should have left");
        }
        assert_eq!(state.pending_timers(), held_timers(&state), "the timers of those that left are no longer counted");
    }

    /// The timers the state's orders and parcels hold: what `pending_timers` counts.
    fn held_timers(state: &StreamState) -> usize {
        state.orders.values().map(|o| o.timers.len()).sum::<usize>() + state.parcels.values().map(|p| p.timers.len()).sum::<usize>()
    }

    /// Events of a small simulated scenario (faults off), sorted by event time.
    fn simulated(seed: u64, orders_per_day: f64) -> Vec<Event> {
        let scenario = Scenario { seed, days: 3, orders_per_day, ..Scenario::default() };
        let mut events: Vec<Event> = Simulator::new(scenario).expect("the default scenario is valid").events().collect();
        events.sort_by_key(|e| e.occurred_at.micros);
        events
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

        /// Any arrival order within the lateness bound gives the same state and the same
        /// timer firings: each event is delayed by a random amount below the allowed
        /// lateness, and the watermark is advanced after every few events.
        #[test]
        fn arrival_order_within_the_lateness_changes_nothing(seed in 0u64..1000, shuffle in any::<u64>(), every in 1usize..50) {
            use rand::{Rng, SeedableRng};
            let events = simulated(seed, 40.0);
            // Short timers, so that every run has plenty of them to fire.
            let settings = StreamSettings { label_scan_after: 2 * HOUR, no_scan_after: 6 * HOUR, ..StreamSettings::default() };
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(shuffle);
            let mut arrival: Vec<(i64, &Event)> = events.iter().map(|e| (e.occurred_at.micros + rng.random_range(0..settings.allowed_lateness), e)).collect();
            arrival.sort_by_key(|(at, _)| *at);

            let process = |events: &mut dyn Iterator<Item = &Event>| {
                let mut state = StreamState::new(settings.clone());
                let mut fired = Vec::new();
                for (n, e) in events.enumerate() {
                    state.apply(e.clone());
                    if n % every == 0 {
                        fired.extend(state.fire_due_timers());
                    }
                }
                fired.extend(state.fire_due_timers());
                fired.sort();
                (state, fired)
            };
            let (in_order, in_order_fired) = process(&mut events.iter());
            let (shuffled, shuffled_fired) = process(&mut arrival.iter().map(|(_, e)| *e));
            prop_assert_eq!(shuffled.counters().late, 0);
            prop_assert!(in_order == shuffled, "states differ");
            prop_assert_eq!(in_order.pending_timers(), held_timers(&in_order));
            prop_assert_eq!(shuffled.pending_timers(), held_timers(&shuffled));
            prop_assert!(!in_order_fired.is_empty());
            prop_assert!(!in_order.lanes().is_empty());
            prop_assert_eq!(in_order_fired, shuffled_fired);
        }
    }
}
