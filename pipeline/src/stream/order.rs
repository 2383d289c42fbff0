//! One order and its parcels, as their events say, placed by event time.
//!
//! Every part of an [`OrderState`] is a function of the *set* of events applied, never of
//! their arrival order: a milestone keeps its earliest event (ties broken by the event
//! id's hash), scans are kept sorted by `(occurred_at, id hash)`, and everything a reader
//! wants (the status, the flags) is derived from those on demand. That is what makes any
//! arrival order of the same events end in the same state.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use smol_str::{SmolStr, SmolStrBuilder};

use super::time::{PendingTimers, TimerSubject};

use crate::model::{EventType, Money, NotifyChannel, ParcelStatus, SubStatus, Timestamp, Window};

/// A short string as the state keeps it: order ids and parcel keys, and the texts of
/// scans and milestones (statuses, places, channels). Most are short, so they sit inline
/// (up to 23 bytes): looking an id up compares bytes in the hash table itself instead of
/// following a pointer, and the copies held by timers, indexes and parcels cost no
/// allocation. It serialises as a plain string.
pub type Key = SmolStr;

/// The longest text a [`Key`] holds inline.
const INLINE_KEY_BYTES: usize = 23;

/// Shares the texts of scans and milestones across the state. A long text (a carrier's
/// "Shipment information received", a cancellation reason) does not fit inline and most
/// repeat one of a few, so each distinct one is allocated once; a scan's texts as a whole
/// (its code, description and place) repeat too, one per carrier facility and code, so
/// each distinct [`ScanTexts`] is kept once and scans hold a reference to it. Bounded:
/// past its capacity a part of the pool starts over (what was shared stays valid), so
/// free-form texts cannot make it grow without end. A cache: not part of the state's
/// equality.
#[derive(Debug, Clone, Default)]
pub struct TextPool {
    long: super::HashSet<Key>,
    /// By [`ScanTexts::encode`].
    scans: super::HashMap<Box<[u8]>, Arc<ScanTexts>>,
    /// Where the texts to look up are encoded (kept, so that a look-up allocates nothing).
    scratch: Vec<u8>,
}

impl TextPool {
    const CAPACITY: usize = 4096;
    const SCAN_TEXTS_CAPACITY: usize = 16_384;

    /// `text` as a [`Key`]: inline when short, else the pool's shared copy.
    pub fn key(&mut self, text: String) -> Key {
        if text.len() <= INLINE_KEY_BYTES {
            return Key::from(text);
        }
        if let Some(shared) = self.long.get(text.as_str()) {
            return shared.clone();
        }
        if self.long.len() >= Self::CAPACITY {
            self.long.clear();
        }
        let shared = Key::from(text);
        self.long.insert(shared.clone());
        shared
    }

    /// A scan's texts as the state keeps them: the pool's copy if it has an equal one.
    pub fn scan_texts(&mut self, texts: ScanTexts<String>) -> Arc<ScanTexts> {
        texts.encode(&mut self.scratch);
        if let Some(shared) = self.scans.get(self.scratch.as_slice()) {
            return Arc::clone(shared);
        }
        let ScanTexts { raw_status, description, city, region, country } = texts;
        let mut key = |text: Option<String>| text.map(|t| self.key(t));
        let texts =
            Arc::new(ScanTexts { raw_status: key(raw_status), description: key(description), city: key(city), region: key(region), country: key(country) });
        // New texts are rare: encoding them again to keep them costs little.
        self.share_scan_texts(&texts)
    }

    /// `texts` shared with equal ones: the pool's copy, or `texts` kept as that copy (a
    /// restored checkpoint's scans each hold their own).
    pub fn share_scan_texts(&mut self, texts: &Arc<ScanTexts>) -> Arc<ScanTexts> {
        texts.encode(&mut self.scratch);
        if let Some(shared) = self.scans.get(self.scratch.as_slice()) {
            return Arc::clone(shared);
        }
        if self.scans.len() >= Self::SCAN_TEXTS_CAPACITY {
            self.scans.clear();
        }
        self.scans.insert(Box::from(self.scratch.as_slice()), Arc::clone(texts));
        Arc::clone(texts)
    }
}

/// A stable 64-bit identity of an event id: deduplication and the tie-break between
/// events at the same instant.
pub fn id_hash(event_id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(event_id.as_bytes())
}

/// One thing that happened at one time, by one event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Mark {
    pub at: Timestamp,
    /// The event id's [`id_hash`].
    pub id: u64,
    /// What the event adds in words: a cancellation reason, a warehouse.
    pub detail: Option<Key>,
}

impl Mark {
    fn key(&self) -> (i64, u64) {
        (self.at.micros, self.id)
    }
}

/// Keeps the earliest of the marks seen for one milestone.
pub fn keep_earliest(slot: &mut Option<Mark>, mark: Mark) {
    if slot.as_ref().is_none_or(|current| mark.key() < current.key()) {
        *slot = Some(mark);
    }
}

/// What the checkout said (`order.created`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Checkout {
    pub at: Timestamp,
    pub id: u64,
    pub channel: Option<Key>,
    pub customer_country: Option<Key>,
    pub customer_region: Option<Key>,
    pub customer_postal_code: Option<Key>,
    pub notify: Vec<NotifyChannel>,
    pub items: Option<i32>,
    pub total: Option<Money>,
    pub ship_by: Option<Timestamp>,
    pub promised_delivery: Option<Window>,
}

impl Checkout {
    /// The customer's `country-region`, the destination end of a lane.
    pub fn destination(&self) -> Option<Key> {
        Some(region_key(self.customer_country.as_deref()?, self.customer_region.as_deref()?))
    }
}

/// The order-level milestones, each the earliest event of its type.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Milestones {
    pub paid: Option<Mark>,
    /// `detail`: the warehouse.
    pub fulfillment_started: Option<Mark>,
    pub completed: Option<Mark>,
    /// `detail`: the reason.
    pub cancelled: Option<Mark>,
    /// `detail`: the reason.
    pub return_requested: Option<Mark>,
}

impl Milestones {
    /// Each milestone with the event type that sets it: the one list the flags, the
    /// timeline and the event times read.
    pub fn by_event(&self) -> [(EventType, &Option<Mark>); 5] {
        [
            (EventType::OrderPaid, &self.paid),
            (EventType::OrderFulfillmentStarted, &self.fulfillment_started),
            (EventType::OrderCompleted, &self.completed),
            (EventType::OrderCancelled, &self.cancelled),
            (EventType::OrderReturnRequested, &self.return_requested),
        ]
    }
}

/// One carrier scan of a parcel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "SavedScan", into = "SavedScan")]
pub struct Scan {
    pub at: Timestamp,
    pub id: u64,
    pub status: ParcelStatus,
    pub sub_status: Option<SubStatus>,
    /// Shared with the state's other scans of the same texts (see [`TextPool`]).
    pub texts: Arc<ScanTexts>,
    pub estimated_delivery: Option<Window>,
}

/// The words of a scan: the carrier's own code and text, and where it happened. `T` is
/// `String` as an event brings them and [`Key`] as the state keeps them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct ScanTexts<T = Key> {
    pub raw_status: Option<T>,
    pub description: Option<T>,
    pub city: Option<T>,
    pub region: Option<T>,
    pub country: Option<T>,
}

impl<T: AsRef<str>> ScanTexts<T> {
    /// The five parts as one byte string that tells them apart (the pool's key, hashed
    /// and compared at once): an absent part is a 0, a present one a 1, its length and
    /// its bytes.
    fn encode(&self, into: &mut Vec<u8>) {
        into.clear();
        for part in [&self.raw_status, &self.description, &self.city, &self.region, &self.country] {
            match part.as_ref().map(AsRef::as_ref) {
                None => into.push(0),
                Some(text) => {
                    into.push(1);
                    into.extend_from_slice(&text.len().to_le_bytes());
                    into.extend_from_slice(text.as_bytes());
                }
            }
        }
    }
}

/// A [`Scan`] in a checkpoint: its texts inline, as before they were shared.
#[derive(Serialize, Deserialize)]
struct SavedScan {
    at: Timestamp,
    id: u64,
    status: ParcelStatus,
    sub_status: Option<SubStatus>,
    raw_status: Option<Key>,
    description: Option<Key>,
    city: Option<Key>,
    region: Option<Key>,
    country: Option<Key>,
    estimated_delivery: Option<Window>,
}

impl From<SavedScan> for Scan {
    fn from(saved: SavedScan) -> Self {
        let SavedScan { at, id, status, sub_status, raw_status, description, city, region, country, estimated_delivery } = saved;
        let texts = Arc::new(ScanTexts { raw_status, description, city, region, country });
        Scan { at, id, status, sub_status, texts, estimated_delivery }
    }
}

impl From<Scan> for SavedScan {
    fn from(scan: Scan) -> Self {
        let Scan { at, id, status, sub_status, texts, estimated_delivery } = scan;
        let ScanTexts { raw_status, description, city, region, country } = Arc::unwrap_or_clone(texts);
        SavedScan { at, id, status, sub_status, raw_status, description, city, region, country, estimated_delivery }
    }
}

impl Scan {
    fn key(&self) -> (i64, u64) {
        (self.at.micros, self.id)
    }
}

/// One parcel: an `order.shipped` (carrier + tracking number) and its scans.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ParcelState {
    pub carrier: Key,
    pub tracking_number: Key,
    /// The earliest `order.shipped` naming this parcel; `None` while only scans are known.
    /// `detail`: the service level.
    pub shipped: Option<Mark>,
    /// The order of that earliest `order.shipped`.
    pub shipped_order: Option<Key>,
    /// The smallest `order_id` any scan of the parcel named, for parcels no
    /// `order.shipped` names (yet).
    pub order_hint: Option<Key>,
    /// Sorted by `(occurred_at, id hash)`, without duplicates.
    pub scans: Vec<Scan>,
    /// Its pending timers (`label_not_scanned`, `no_scan_for`, `parcel_unclaimed`, `lane_delivery`).
    pub timers: PendingTimers,
}

/// Statuses after which a parcel should not move again.
fn is_final(status: ParcelStatus) -> bool {
    matches!(status, ParcelStatus::Delivered | ParcelStatus::ReturnedToSender)
}

impl TimerSubject for ParcelState {
    fn pending_timers(&mut self) -> &mut PendingTimers {
        &mut self.timers
    }
}

impl ParcelState {
    pub fn new(carrier: &str, tracking_number: &str) -> Self {
        ParcelState {
            carrier: Key::new(carrier),
            tracking_number: Key::new(tracking_number),
            shipped: None,
            shipped_order: None,
            order_hint: None,
            scans: Vec::new(),
            timers: PendingTimers::default(),
        }
    }

    /// The order the parcel belongs to: the one whose `order.shipped` names it (the
    /// earliest, if several do), else the one its scans name. A function of the events
    /// seen, not of their order.
    pub fn owner(&self) -> Option<&str> {
        self.shipped_order.as_deref().or(self.order_hint.as_deref())
    }

    /// [`Self::owner`] as the state's key.
    pub fn owner_key(&self) -> Option<&Key> {
        self.shipped_order.as_ref().or(self.order_hint.as_ref())
    }

    /// Records an `order.shipped` naming this parcel.
    pub fn ship(&mut self, mark: Mark, order_id: &str) {
        if self.shipped.as_ref().is_none_or(|current| mark.key() < current.key()) {
            self.shipped = Some(mark);
            self.shipped_order = Some(Key::new(order_id));
        }
    }

    /// Records the order id a scan named.
    pub fn hint_order(&mut self, order_id: &str) {
        if self.order_hint.as_deref().is_none_or(|current| order_id < current) {
            self.order_hint = Some(Key::new(order_id));
        }
    }

    /// Adds a scan in its event-time place and returns that place; `None` if this scan
    /// was already here.
    pub fn add_scan(&mut self, scan: Scan) -> Option<usize> {
        if self.scans.iter().any(|s| s.id == scan.id) {
            return None;
        }
        if self.scans.capacity() == 0 {
            // Room for a typical parcel's scans at once (most have 4 to 8), instead of
            // growing, and moving them, on the way there.
            self.scans.reserve_exact(8);
        }
        let place = self.scans.partition_point(|s| s.key() < scan.key());
        self.scans.insert(place, scan);
        Some(place)
    }

    pub fn service_level(&self) -> Option<&str> {
        self.shipped.as_ref()?.detail.as_deref()
    }

    /// The status of the latest scan; `info_received` for a shipped parcel with no scan.
    pub fn status(&self) -> Option<ParcelStatus> {
        match self.scans.last() {
            Some(scan) => Some(scan.status),
            None => self.shipped.as_ref().map(|_| ParcelStatus::InfoReceived),
        }
    }

    /// The latest scan at or before `at`.
    pub fn latest_scan_until(&self, at: i64) -> Option<&Scan> {
        self.scans.iter().take_while(|s| s.at.micros <= at).last()
    }

    /// Whether the parcel had gone `quiet_for` without a scan at `due`, undelivered: its
    /// latest scan by then was exactly `quiet_for` earlier and not final.
    pub fn quiet_at(&self, due: i64, quiet_for: i64) -> bool {
        self.latest_scan_until(due).is_some_and(|last| last.at.micros + quiet_for == due && !is_final(last.status))
    }

    /// The first scan with `status`.
    pub fn first(&self, status: ParcelStatus) -> Option<&Scan> {
        self.scans.iter().find(|s| s.status == status)
    }

    /// The carrier's latest ETA window.
    pub fn carrier_eta(&self) -> Option<Window> {
        self.scans.iter().rev().find_map(|s| s.estimated_delivery)
    }

    /// The pickup scan's `country-region`, the origin end of a lane: of several
    /// `in_transit` scans at the first such instant, the smallest region (as the
    /// `parcels` view decides it).
    pub fn origin(&self) -> Option<Key> {
        let pickup_at = self.first(ParcelStatus::InTransit)?.at;
        self.scans
            .iter()
            .filter(|s| s.status == ParcelStatus::InTransit && s.at.micros == pickup_at.micros)
            .filter_map(|s| Some(region_key(s.texts.country.as_deref()?, s.texts.region.as_deref()?)))
            .min()
    }

    /// A scan that moves the parcel on after it was delivered or returned.
    pub fn scan_after_final(&self) -> Option<&Scan> {
        let first_final = self.scans.iter().position(|s| is_final(s.status))?;
        self.scans[first_final + 1..].iter().find(|s| !is_final(s.status))
    }

    pub fn last_event_at(&self) -> Option<i64> {
        let scan = self.scans.last().map(|s| s.at.micros);
        let shipped = self.shipped.as_ref().map(|m| m.at.micros);
        scan.max(shipped)
    }
}

/// The key of a parcel across the state: carrier and tracking number.
pub fn parcel_key(carrier: &str, tracking_number: &str) -> Key {
    joined_key(carrier, '/', tracking_number)
}

/// [`parcel_key`] on the path of every event that names a parcel. A key up to 23 bytes
/// is built inline at no cost. A longer one (most Cainiao, SF Express and USPS parcels) is
/// put together on the stack and looked up in `parcels`: a parcel already there shares its
/// key instead of allocating a new copy for every scan.
pub fn shared_parcel_key<V>(parcels: &super::HashMap<Key, V>, carrier: &str, tracking_number: &str) -> Key {
    if carrier.len() + 1 + tracking_number.len() <= INLINE_KEY_BYTES {
        return parcel_key(carrier, tracking_number);
    }
    let mut text = arrayvec::ArrayString::<64>::new();
    if text.try_push_str(carrier).is_err() || text.try_push('/').is_err() || text.try_push_str(tracking_number).is_err() {
        return parcel_key(carrier, tracking_number);
    }
    match parcels.get_key_value(text.as_str()) {
        Some((key, _)) => key.clone(),
        None => Key::new(text.as_str()),
    }
}

/// `country-region`, an end of a lane.
fn region_key(country: &str, region: &str) -> Key {
    joined_key(country, '-', region)
}

/// Two parts and a separator, built in place: on the path of every scan, and inline
/// (no allocation) for the usual lengths.
fn joined_key(first: &str, separator: char, second: &str) -> Key {
    let mut key = SmolStrBuilder::new();
    key.push_str(first);
    key.push(separator);
    key.push_str(second);
    key.finish()
}

crate::model::vocabulary! {
    /// Where an order stands, derived from its milestones and parcels.
    OrderStatus {
        /// Events for the order arrived, but not its `order.created`.
        AwaitingOrder = "awaiting_order",
        Created = "created",
        Paid = "paid",
        Fulfilling = "fulfilling",
        /// Handed to a carrier (label created, no movement yet).
        Shipped = "shipped",
        InTransit = "in_transit",
        OutForDelivery = "out_for_delivery",
        AvailableForPickup = "available_for_pickup",
        FailedAttempt = "failed_attempt",
        Exception = "exception",
        /// Some parcels delivered, others not yet.
        PartiallyDelivered = "partially_delivered",
        Delivered = "delivered",
        Completed = "completed",
        Cancelled = "cancelled",
        ReturnRequested = "return_requested",
        Returned = "returned",
    }
}

impl OrderStatus {
    /// An order in one of these has nothing more to wait for: it may leave the hot state
    /// after the retention period.
    pub fn is_final(self) -> bool {
        matches!(self, OrderStatus::Delivered | OrderStatus::Completed | OrderStatus::Cancelled | OrderStatus::Returned)
    }

    /// The order-level reading of one parcel's status.
    fn of_parcel(status: ParcelStatus) -> OrderStatus {
        match status {
            ParcelStatus::InfoReceived | ParcelStatus::Unknown => OrderStatus::Shipped,
            ParcelStatus::InTransit => OrderStatus::InTransit,
            ParcelStatus::OutForDelivery => OrderStatus::OutForDelivery,
            ParcelStatus::FailedAttempt => OrderStatus::FailedAttempt,
            ParcelStatus::AvailableForPickup => OrderStatus::AvailableForPickup,
            ParcelStatus::Delivered => OrderStatus::Delivered,
            ParcelStatus::Exception => OrderStatus::Exception,
            ParcelStatus::ReturnedToSender => OrderStatus::Returned,
        }
    }

    /// How much a parcel in this status needs attention; the order shows its most urgent
    /// undelivered parcel.
    fn urgency(self) -> u8 {
        match self {
            OrderStatus::Exception => 6,
            OrderStatus::FailedAttempt => 5,
            OrderStatus::AvailableForPickup => 4,
            OrderStatus::OutForDelivery => 3,
            OrderStatus::InTransit => 2,
            _ => 1,
        }
    }
}

/// Something in an order's events that should not happen; kept and shown, never dropped.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "flag", rename_all = "snake_case")]
pub enum Flag {
    /// A parcel was scanned as moving again after it was delivered or returned.
    ScanAfterDelivery { tracking_number: String, raw_status: Option<String>, at: String },
    /// A parcel was shipped after the order was cancelled.
    ShippedAfterCancellation { tracking_number: String },
    /// An event is dated before the order was created.
    EventBeforeCreation { event: &'static str },
    /// The order's `order.created` has not arrived although the watermark is past its
    /// first event by more than the grace period.
    MissingOrderCreated,
    /// The order's events name more than one merchant (the smallest and the largest id
    /// named): two merchants use the same `order_id`, and the state holds their events as
    /// one order. No merchant sees it; order ids must be unique across a deployment.
    MerchantConflict { merchant_ids: [String; 2] },
}

impl Flag {
    /// The flag's name, as in its JSON `flag` field.
    pub fn name(&self) -> &'static str {
        match self {
            Flag::ScanAfterDelivery { .. } => "scan_after_delivery",
            Flag::ShippedAfterCancellation { .. } => "shipped_after_cancellation",
            Flag::EventBeforeCreation { .. } => "event_before_creation",
            Flag::MissingOrderCreated => "missing_order_created",
            Flag::MerchantConflict { .. } => "merchant_conflict",
        }
    }
}

/// Everything an order's own events say (its parcels live beside it, by key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OrderState {
    pub order_id: Key,
    /// The smallest merchant id its events named (they should all name the same one).
    pub merchant_id: Option<String>,
    /// The largest merchant id its events named, when that is not `merchant_id`: the
    /// events of two merchants' orders under one `order_id`. The state keys orders by
    /// `order_id` alone (as the contract's Kafka key and carrier scans name an order), so
    /// it cannot tell them apart; such an order is flagged and shown to no merchant.
    pub conflicting_merchant_id: Option<String>,
    pub checkout: Option<Checkout>,
    pub milestones: Milestones,
    /// The [`parcel_key`]s of the parcels this order owns, sorted.
    pub parcels: Vec<Key>,
    /// Hashes of the order events applied, sorted: the order's deduplication window.
    pub seen: Vec<u64>,
    /// The latest event time of the order's own events (not its parcels' scans), kept
    /// as they are applied: the daily eviction check reads it for every order.
    pub own_last_event_at: Option<i64>,
    /// Its pending timers (`ship_by_passed`).
    pub timers: PendingTimers,
}

impl TimerSubject for OrderState {
    fn pending_timers(&mut self) -> &mut PendingTimers {
        &mut self.timers
    }
}

impl OrderState {
    pub fn new(order_id: &str) -> Self {
        OrderState {
            order_id: Key::new(order_id),
            merchant_id: None,
            conflicting_merchant_id: None,
            checkout: None,
            milestones: Milestones::default(),
            parcels: Vec::new(),
            seen: Vec::new(),
            own_last_event_at: None,
            timers: PendingTimers::default(),
        }
    }

    /// Records an order event's id and time; `false` if it was applied before.
    pub fn first_sighting(&mut self, id: u64, at: i64) -> bool {
        match self.seen.binary_search(&id) {
            Ok(_) => false,
            Err(slot) => {
                self.seen.insert(slot, id);
                self.own_last_event_at = self.own_last_event_at.max(Some(at));
                true
            }
        }
    }

    /// Records the merchant an order event names; `true` if that made the order one of
    /// two merchants (see [`OrderState::conflicting_merchant_id`]). Keeps the smallest
    /// and the largest merchant named, whatever the arrival order.
    pub fn name_merchant(&mut self, merchant_id: Option<&str>) -> bool {
        let Some(merchant) = merchant_id else { return false };
        let Some(current) = self.merchant_id.as_deref() else {
            self.merchant_id = Some(merchant.to_owned());
            return false;
        };
        if merchant == current {
            return false;
        }
        let (smallest, other) = if merchant < current { (merchant, current) } else { (current, merchant) };
        let largest = match self.conflicting_merchant_id.as_deref() {
            Some(known) if known > other => known,
            _ => other,
        };
        let (smallest, largest) = (smallest.to_owned(), largest.to_owned());
        let newly_conflicting = self.conflicting_merchant_id.is_none();
        self.merchant_id = Some(smallest);
        self.conflicting_merchant_id = Some(largest);
        newly_conflicting
    }

    /// The merchant whose order this is: `None` while no event named one, or when the
    /// events named more than one.
    pub fn sole_merchant(&self) -> Option<&str> {
        self.merchant_id.as_deref().filter(|_| self.conflicting_merchant_id.is_none())
    }

    /// Keeps the earliest checkout if several `order.created` events name the order.
    pub fn set_checkout(&mut self, checkout: Checkout) {
        if self.checkout.as_ref().is_none_or(|c| (checkout.at.micros, checkout.id) < (c.at.micros, c.id)) {
            self.checkout = Some(checkout);
        }
    }

    pub fn own_parcel(&mut self, key: &Key) {
        if let Err(at) = self.parcels.binary_search(key) {
            self.parcels.insert(at, key.clone());
        }
    }

    pub fn disown_parcel(&mut self, key: &str) {
        self.parcels.retain(|k| k != key);
    }

    /// An order that nothing but a moved parcel's scan ever named: nothing to keep.
    pub fn is_empty(&self) -> bool {
        self.seen.is_empty() && self.parcels.is_empty()
    }

    /// Event times of the order's own events.
    fn own_times(&self) -> impl Iterator<Item = i64> + '_ {
        let checkout = self.checkout.as_ref().map(|c| c.at.micros);
        self.milestones.by_event().into_iter().filter_map(|(_, m)| m.as_ref().map(|m| m.at.micros)).chain(checkout)
    }
}

/// An order with its parcels: what status, flags, timelines and ETAs are read from.
#[derive(Debug, Clone, Copy)]
pub struct OrderView<'a> {
    pub order: &'a OrderState,
    /// The order's parcels, in the order of [`OrderState::parcels`].
    pub parcels: &'a [&'a ParcelState],
}

impl OrderView<'_> {
    fn times(&self) -> impl Iterator<Item = i64> + '_ {
        let parcels = self.parcels.iter().flat_map(|p| p.scans.iter().map(|s| s.at.micros).chain(p.shipped.as_ref().map(|m| m.at.micros)));
        self.order.own_times().chain(parcels)
    }

    /// The earliest event time of anything about the order.
    pub fn first_event_at(&self) -> Option<i64> {
        self.times().min()
    }

    /// The latest event time of anything about the order.
    pub fn last_event_at(&self) -> Option<i64> {
        self.parcels.iter().filter_map(|p| p.last_event_at()).max().max(self.order.own_last_event_at)
    }

    /// The earliest shipment of any parcel.
    pub fn first_shipped_at(&self) -> Option<i64> {
        self.parcels.iter().filter_map(|p| p.shipped.as_ref()).map(|m| m.at.micros).min()
    }

    /// Where the order stands now.
    pub fn status(&self) -> OrderStatus {
        let m = &self.order.milestones;
        if m.cancelled.is_some() {
            return OrderStatus::Cancelled;
        }
        let parcels: Vec<OrderStatus> = self.parcels.iter().filter_map(|p| p.status()).map(OrderStatus::of_parcel).collect();
        if m.return_requested.is_some() {
            let all_back = !parcels.is_empty() && parcels.iter().all(|s| *s == OrderStatus::Returned);
            return if all_back { OrderStatus::Returned } else { OrderStatus::ReturnRequested };
        }
        if m.completed.is_some() {
            return OrderStatus::Completed;
        }
        if !parcels.is_empty() {
            let delivered = parcels.iter().filter(|s| **s == OrderStatus::Delivered).count();
            if delivered == parcels.len() {
                return OrderStatus::Delivered;
            }
            if parcels.iter().all(|s| *s == OrderStatus::Returned) {
                return OrderStatus::Returned;
            }
            if delivered > 0 {
                return OrderStatus::PartiallyDelivered;
            }
            let open = parcels.iter().filter(|s| !matches!(s, OrderStatus::Delivered | OrderStatus::Returned));
            return open.max_by_key(|s| s.urgency()).copied().unwrap_or(OrderStatus::Shipped);
        }
        if self.order.checkout.is_none() {
            OrderStatus::AwaitingOrder
        } else if m.fulfillment_started.is_some() {
            OrderStatus::Fulfilling
        } else if m.paid.is_some() {
            OrderStatus::Paid
        } else {
            OrderStatus::Created
        }
    }

    /// What is wrong with the order's events, given the watermark (a missing
    /// `order.created` is only a problem once the grace period has passed).
    pub fn flags(&self, watermark: Option<i64>, missing_created_grace: i64) -> Vec<Flag> {
        let mut flags = Vec::new();
        if let (Some(smallest), Some(largest)) = (&self.order.merchant_id, &self.order.conflicting_merchant_id) {
            flags.push(Flag::MerchantConflict { merchant_ids: [smallest.clone(), largest.clone()] });
        }
        for parcel in self.parcels {
            if let Some(scan) = parcel.scan_after_final() {
                flags.push(Flag::ScanAfterDelivery {
                    tracking_number: parcel.tracking_number.to_string(),
                    raw_status: scan.texts.raw_status.as_ref().map(ToString::to_string),
                    at: scan.at.to_rfc3339(),
                });
            }
        }
        let m = &self.order.milestones;
        if let Some(cancelled) = &m.cancelled {
            for parcel in self.parcels {
                if parcel.shipped.as_ref().is_some_and(|s| s.at > cancelled.at) {
                    flags.push(Flag::ShippedAfterCancellation { tracking_number: parcel.tracking_number.to_string() });
                }
            }
        }
        match &self.order.checkout {
            Some(checkout) => {
                for (event, mark) in m.by_event() {
                    if mark.as_ref().is_some_and(|mark| mark.at < checkout.at) {
                        flags.push(Flag::EventBeforeCreation { event: event.as_str() });
                    }
                }
                if self.parcels.iter().any(|p| p.shipped.as_ref().is_some_and(|s| s.at < checkout.at)) {
                    flags.push(Flag::EventBeforeCreation { event: EventType::OrderShipped.as_str() });
                }
            }
            None => {
                let first = self.first_event_at();
                if let (Some(w), Some(first)) = (watermark, first)
                    && w > first + missing_created_grace
                {
                    flags.push(Flag::MissingOrderCreated);
                }
            }
        }
        flags
    }

    /// The delivery window the customer should expect now: the carrier's latest ETA of
    /// the parcel still on its way that is expected last, or the promise made at checkout.
    pub fn current_eta(&self) -> Option<Window> {
        let carrier = self.parcels.iter().filter(|p| p.status().is_some_and(|s| !is_final(s))).filter_map(|p| p.carrier_eta()).max_by_key(|w| w.to.micros);
        carrier.or_else(|| self.order.checkout.as_ref().and_then(|c| c.promised_delivery))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_pool_shares_long_texts_and_keeps_short_ones_inline() {
        let mut pool = TextPool::default();
        let long = "Shipment information received";
        let (first, second) = (pool.key(long.to_owned()), pool.key(long.to_owned()));
        assert_eq!((first.as_str(), second.as_str()), (long, long));
        assert_eq!(first.as_ptr(), second.as_ptr(), "one allocation, shared");
        let short = pool.key("Köln".to_owned());
        assert!(!short.is_heap_allocated());
        assert_eq!(pool.long.len(), 1, "short texts are not pooled");
        for n in 0..TextPool::CAPACITY {
            pool.key(format!("{long} at facility {n}"));
        }
        assert_eq!(pool.long.len(), 1, "full: the pool started over");
        assert_eq!(first.as_str(), long, "texts shared before stay valid");
    }

    #[test]
    fn equal_scan_texts_are_kept_once() {
        let mut pool = TextPool::default();
        let texts = |city: &str| ScanTexts {
            raw_status: Some("PU".to_owned()),
            description: Some("Picked up at the origin facility".to_owned()),
            city: Some(city.to_owned()),
            region: None,
            country: Some("DE".to_owned()),
        };
        let (first, again, elsewhere) = (pool.scan_texts(texts("Köln")), pool.scan_texts(texts("Köln")), pool.scan_texts(texts("Berlin")));
        assert!(Arc::ptr_eq(&first, &again), "equal texts: one copy");
        assert_eq!((first.city.as_deref(), elsewhere.city.as_deref()), (Some("Köln"), Some("Berlin")));
        assert_eq!(first.description.as_ref().map(|d| d.as_ptr()), elsewhere.description.as_ref().map(|d| d.as_ptr()), "the long description too");
        // Texts that run together the same way are still told apart.
        let cases = [(Some("ab"), None), (Some("a"), Some("b")), (None, Some("ab")), (Some(""), None), (None, Some("")), (None, None)];
        for (raw_status, description) in cases.into_iter().chain(cases) {
            let owned = |text: Option<&str>| text.map(str::to_owned);
            let shared = pool.scan_texts(ScanTexts { raw_status: owned(raw_status), description: owned(description), ..ScanTexts::default() });
            assert_eq!((shared.raw_status.as_deref(), shared.description.as_deref()), (raw_status, description));
        }
        let restored = Arc::new(ScanTexts::clone(&first));
        assert!(Arc::ptr_eq(&pool.share_scan_texts(&restored), &first), "a restored copy is shared");
        for n in 0..TextPool::SCAN_TEXTS_CAPACITY {
            pool.scan_texts(texts(&format!("Facility {n}")));
        }
        assert!(pool.scans.len() < TextPool::SCAN_TEXTS_CAPACITY, "full: the pool started over");
        assert_eq!(first.city.as_deref(), Some("Köln"), "texts shared before stay valid");
    }

    fn at(hours: i64) -> Timestamp {
        Timestamp::from_micros_utc(1_795_000_000_000_000 + hours * Timestamp::MICROS_PER_HOUR)
    }

    fn scan(hours: i64, id: u64, status: ParcelStatus) -> Scan {
        Scan { at: at(hours), id, status, sub_status: None, texts: Arc::default(), estimated_delivery: None }
    }

    #[test]
    fn a_parcel_key_is_the_same_text_whether_shared_or_built() {
        let long = "X".repeat(70);
        let cases: &[(&str, &str, bool)] = &[
            ("dhl", "JD014600006281", true),        // inline
            ("cainiao", "LP28492204284645", true),  // 24 bytes: shared from the map
            ("cainiao", "LP28492204284646", false), // long, not in the map: built
            ("usps", long.as_str(), true),          // longer than the stack buffer: built
        ];
        let mut parcels: crate::stream::HashMap<Key, ParcelState> = Default::default();
        for &(carrier, tracking, present) in cases {
            if present {
                parcels.insert(parcel_key(carrier, tracking), ParcelState::new(carrier, tracking));
            }
        }
        for &(carrier, tracking, _) in cases {
            assert_eq!(shared_parcel_key(&parcels, carrier, tracking), format!("{carrier}/{tracking}"), "{carrier} {tracking}");
        }
    }

    #[test]
    fn the_origin_is_the_smallest_region_scanned_in_transit_at_the_first_pickup_instant() {
        use ParcelStatus::{InTransit, InfoReceived};
        let located = |hours, id, status, region: Option<&str>| {
            let texts = ScanTexts { country: Some(Key::new("DE")), region: region.map(Key::new), ..ScanTexts::default() };
            Scan { texts: Arc::new(texts), ..scan(hours, id, status) }
        };
        let cases: Vec<(&str, Vec<Scan>, Option<&str>)> = vec![
            ("no pickup yet", vec![located(0, 1, InfoReceived, Some("NW"))], None),
            ("one pickup", vec![located(0, 1, InfoReceived, Some("NW")), located(1, 2, InTransit, Some("HH"))], Some("DE-HH")),
            ("a later scan in transit elsewhere", vec![located(1, 2, InTransit, Some("HH")), located(5, 3, InTransit, Some("BE"))], Some("DE-HH")),
            ("two at the first instant: the smaller", vec![located(1, 9, InTransit, Some("NW")), located(1, 2, InTransit, Some("BE"))], Some("DE-BE")),
            ("one of them without a region", vec![located(1, 1, InTransit, None), located(1, 2, InTransit, Some("NW"))], Some("DE-NW")),
        ];
        for (case, scans, expected) in cases {
            let mut parcel = ParcelState::new("dhl", "T1");
            for scan in scans {
                parcel.add_scan(scan);
            }
            assert_eq!(parcel.origin().as_deref(), expected, "{case}");
        }
    }

    fn mark(hours: i64, id: u64) -> Mark {
        Mark { at: at(hours), id, detail: None }
    }

    fn checkout() -> Checkout {
        Checkout {
            at: at(0),
            id: 1,
            channel: None,
            customer_country: None,
            customer_region: None,
            customer_postal_code: None,
            notify: vec![],
            items: None,
            total: None,
            ship_by: None,
            promised_delivery: None,
        }
    }

    /// An order with a checkout and one parcel per list of scan statuses.
    fn order_with(parcels: &[&[ParcelStatus]]) -> (OrderState, Vec<ParcelState>) {
        let mut order = OrderState::new("o-1");
        order.set_checkout(checkout());
        let parcels = parcels
            .iter()
            .enumerate()
            .map(|(n, statuses)| {
                let mut parcel = ParcelState::new("ups", &format!("1Z{n}"));
                order.own_parcel(&parcel_key("ups", &parcel.tracking_number));
                parcel.ship(mark(1, 100 + n as u64), "o-1");
                for (i, status) in statuses.iter().enumerate() {
                    parcel.add_scan(scan(2 + i as i64, 1000 * (n as u64 + 1) + i as u64, *status));
                }
                parcel
            })
            .collect();
        (order, parcels)
    }

    fn view<'a>(order: &'a OrderState, parcels: &'a [&'a ParcelState]) -> OrderView<'a> {
        OrderView { order, parcels }
    }

    #[test]
    fn order_status_follows_its_parcels() {
        use ParcelStatus::*;
        let cases: &[(&[&[ParcelStatus]], OrderStatus)] = &[
            (&[], OrderStatus::Created),
            (&[&[]], OrderStatus::Shipped),
            (&[&[InfoReceived, InTransit]], OrderStatus::InTransit),
            (&[&[InTransit, OutForDelivery]], OrderStatus::OutForDelivery),
            (&[&[InTransit, Delivered]], OrderStatus::Delivered),
            (&[&[InTransit, Delivered], &[InTransit]], OrderStatus::PartiallyDelivered),
            (&[&[InTransit, Exception], &[OutForDelivery]], OrderStatus::Exception),
            (&[&[InTransit, FailedAttempt], &[OutForDelivery]], OrderStatus::FailedAttempt),
            (&[&[InTransit, AvailableForPickup]], OrderStatus::AvailableForPickup),
            (&[&[InTransit, ReturnedToSender]], OrderStatus::Returned),
            (&[&[InTransit, Unknown]], OrderStatus::Shipped),
        ];
        for (parcels, expected) in cases {
            let (order, parcels_owned) = order_with(parcels);
            let refs: Vec<&ParcelState> = parcels_owned.iter().collect();
            assert_eq!(view(&order, &refs).status(), *expected, "{parcels:?}");
        }
    }

    #[test]
    fn order_milestones_decide_before_parcels() {
        let (mut order, parcels) = order_with(&[&[ParcelStatus::InTransit]]);
        let refs: Vec<&ParcelState> = parcels.iter().collect();
        order.milestones.completed = Some(mark(50, 7));
        assert_eq!(view(&order, &refs).status(), OrderStatus::Completed);
        order.milestones.return_requested = Some(mark(60, 8));
        assert_eq!(view(&order, &refs).status(), OrderStatus::ReturnRequested);
        order.milestones.cancelled = Some(mark(0, 9));
        assert_eq!(view(&order, &refs).status(), OrderStatus::Cancelled);

        let mut early = OrderState::new("o-2");
        assert_eq!(view(&early, &[]).status(), OrderStatus::AwaitingOrder);
        early.set_checkout(checkout());
        early.milestones.paid = Some(mark(1, 2));
        assert_eq!(view(&early, &[]).status(), OrderStatus::Paid);
        early.milestones.fulfillment_started = Some(mark(2, 3));
        assert_eq!(view(&early, &[]).status(), OrderStatus::Fulfilling);
    }

    #[test]
    fn scans_are_placed_by_event_time_and_deduplicated() {
        let mut parcel = ParcelState::new("dhl", "JD1");
        assert_eq!(parcel.add_scan(scan(5, 2, ParcelStatus::Delivered)), Some(0));
        assert_eq!(parcel.add_scan(scan(1, 1, ParcelStatus::InTransit)), Some(0));
        assert_eq!(parcel.add_scan(scan(1, 1, ParcelStatus::InTransit)), None);
        assert_eq!(parcel.add_scan(scan(3, 3, ParcelStatus::OutForDelivery)), Some(1));
        let order: Vec<_> = parcel.scans.iter().map(|s| s.status).collect();
        assert_eq!(order, [ParcelStatus::InTransit, ParcelStatus::OutForDelivery, ParcelStatus::Delivered]);
        assert_eq!(parcel.status(), Some(ParcelStatus::Delivered));
        assert_eq!(parcel.latest_scan_until(at(4).micros).map(|s| s.status), Some(ParcelStatus::OutForDelivery));
        assert!(parcel.scan_after_final().is_none());
    }

    #[test]
    fn flags_name_what_should_not_happen() {
        let (mut order, parcels) = order_with(&[&[ParcelStatus::InTransit, ParcelStatus::Delivered, ParcelStatus::InTransit]]);
        let refs: Vec<&ParcelState> = parcels.iter().collect();
        order.milestones.paid = Some(mark(-1, 5));
        order.milestones.cancelled = Some(mark(0, 6));
        let flags = view(&order, &refs).flags(None, 0);
        assert!(matches!(flags[0], Flag::ScanAfterDelivery { .. }), "{flags:?}");
        assert!(flags.contains(&Flag::ShippedAfterCancellation { tracking_number: "1Z0".into() }), "{flags:?}");
        assert!(flags.contains(&Flag::EventBeforeCreation { event: "order.paid" }), "{flags:?}");

        let mut orphan = OrderState::new("o-3");
        orphan.milestones.paid = Some(mark(0, 1));
        let grace = 2 * Timestamp::MICROS_PER_HOUR;
        assert!(view(&orphan, &[]).flags(Some(at(1).micros), grace).is_empty());
        assert_eq!(view(&orphan, &[]).flags(Some(at(3).micros), grace), [Flag::MissingOrderCreated]);
    }

    #[test]
    fn the_earliest_event_of_a_milestone_wins_in_any_order() {
        let mut a = None;
        let mut b = None;
        for m in [mark(3, 1), mark(1, 9), mark(1, 4)] {
            keep_earliest(&mut a, m);
        }
        for m in [mark(1, 4), mark(3, 1), mark(1, 9)] {
            keep_earliest(&mut b, m);
        }
        assert_eq!(a, b);
        assert_eq!(a.map(|m| m.id), Some(4));
    }

    #[test]
    fn the_merchants_an_order_names_are_the_same_in_any_order() {
        // (merchants named, in arrival order; merchant kept; conflicting; sole merchant)
        let cases: &[(&[Option<&str>], Option<&str>, Option<&str>, Option<&str>)] = &[
            (&[], None, None, None),
            (&[None, Some("m1"), Some("m1"), None], Some("m1"), None, Some("m1")),
            (&[Some("m2"), Some("m1")], Some("m1"), Some("m2"), None),
            (&[Some("m1"), Some("m2")], Some("m1"), Some("m2"), None),
            (&[Some("m2"), Some("m3"), Some("m1")], Some("m1"), Some("m3"), None),
            (&[Some("m3"), Some("m1"), Some("m2")], Some("m1"), Some("m3"), None),
            (&[Some("m2"), Some("m1"), Some("m2"), Some("m1")], Some("m1"), Some("m2"), None),
        ];
        for &(named, merchant, conflicting, sole) in cases {
            let mut order = OrderState::new("o-1");
            let conflicts = named.iter().filter(|&&m| order.name_merchant(m)).count();
            let case = format!("{named:?}");
            assert_eq!(order.merchant_id.as_deref(), merchant, "{case}");
            assert_eq!(order.conflicting_merchant_id.as_deref(), conflicting, "{case}");
            assert_eq!(order.sole_merchant(), sole, "{case}");
            assert_eq!(conflicts, usize::from(conflicting.is_some()), "{case}: a conflict is counted once");
            let flagged = view(&order, &[]).flags(None, 0).into_iter().any(|f| f.name() == "merchant_conflict");
            assert_eq!(flagged, conflicting.is_some(), "{case}");
        }
    }
}
