//! The hub's watch bookkeeping: every watch ([`Entry`]), its indexes (by
//! item and event, by idempotency key, by push id, by alias, by webhook
//! identity and key, by key deadline), the dormant watches of push ids
//! whose session ended, and the push ids offline. A plain synchronous type:
//! no store, no sockets, no clock but the `Instant`s it is given; the hub
//! owns one and does the talking.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tokio::time::Instant;

use super::{SessionLink, WatchId, WatchView, WebhookLink};
use crate::protocol::push::PushHead;
use crate::protocol::time::UnixMillis;
use crate::server::metrics::{Outlet, WatchCounts};
use crate::store::{EventKind, ItemId};

/// Where a watch's pushes go.
pub(super) enum Sink {
    Socket {
        push_id: Arc<str>,
        /// `None` while dormant.
        session: Option<Arc<SessionLink>>,
    },
    Webhook(WebhookLink),
}

/// The idempotency key of socket watches.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct IdemKey {
    pub(super) push_id: Arc<str>,
    pub(super) kind: EventKind,
    /// The item id, or the alias name for a watch made on an alias.
    pub(super) target: String,
    pub(super) key: String,
}

pub(super) struct Entry {
    pub(super) watchable: String,
    pub(super) kind: EventKind,
    /// The item the watch reports now.
    pub(super) item: ItemId,
    pub(super) alias: Option<String>,
    /// The access key the watch was made with (replays read the log with it).
    pub(super) key: String,
    pub(super) sink: Sink,
    pub(super) view: Arc<WatchView>,
    /// The last seq queued for this watch.
    pub(super) cursor: u64,
    /// The final push was queued: no more pushes; ends when it is acked.
    pub(super) ending: bool,
    /// A windowed replay is under way: live events wait in the log for
    /// the next window (so the backlog stays ahead of them, in seq order).
    pub(super) replaying: bool,
    pub(super) idem: Option<IdemKey>,
    /// When `key` expires: the watch ends then (`ended` 401).
    pub(super) key_valid_till: UnixMillis,
    /// A webhook watch's identity.
    pub(super) webhook: Option<WebhookKey>,
    /// Bumped on every (re)watch: a replay window read before it is stale.
    pub(super) epoch: u64,
}

/// The identity of a webhook watch: the same (key, target, event, URL) is
/// the same watch.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct WebhookKey {
    pub(super) key: String,
    pub(super) kind: EventKind,
    /// The item id, or the alias name for a watch made on an alias.
    pub(super) target: String,
    pub(super) url: String,
}

/// Push ids offline, oldest first: O(log n) to add, remove or evict.
#[derive(Default)]
pub(super) struct Offline {
    order: std::collections::BTreeMap<u64, Arc<str>>,
    position: HashMap<Arc<str>, u64>,
    next: u64,
}

impl Offline {
    /// Adds `push_id` unless it is already there (it keeps its place).
    pub(super) fn insert(&mut self, push_id: Arc<str>) {
        if self.position.contains_key(&push_id) {
            return;
        }
        self.next += 1;
        self.order.insert(self.next, push_id.clone());
        self.position.insert(push_id, self.next);
    }

    pub(super) fn remove(&mut self, push_id: &str) {
        if let Some(at) = self.position.remove(push_id) {
            self.order.remove(&at);
        }
    }

    pub(super) fn pop_oldest(&mut self) -> Option<Arc<str>> {
        let (_, push_id) = self.order.pop_first()?;
        self.position.remove(&push_id);
        Some(push_id)
    }

    pub(super) fn len(&self) -> usize {
        self.position.len()
    }
}

/// The fields of a push object that belong to the watch.
pub(super) struct Head<'a> {
    pub(super) watchable: &'a str,
    pub(super) event: EventKind,
    pub(super) id: ItemId,
    pub(super) alias: Option<&'a str>,
}

/// One item's watches, per event kind.
#[derive(Default)]
pub(super) struct ItemWatches {
    pub(super) by_kind: [Vec<WatchId>; 3],
}

impl ItemWatches {
    pub(super) fn is_empty(&self) -> bool {
        self.by_kind.iter().all(Vec::is_empty)
    }
}

/// Every watch and its indexes (see the module docs).
#[derive(Default)]
pub(super) struct Watches {
    pub(super) next_id: WatchId,
    pub(super) watches: HashMap<WatchId, Entry>,
    pub(super) by_item: HashMap<ItemId, ItemWatches>,
    pub(super) by_idem: HashMap<IdemKey, WatchId>,
    pub(super) by_push: HashMap<Arc<str>, HashSet<WatchId>>,
    pub(super) by_alias: HashMap<String, HashSet<WatchId>>,
    /// Dormant socket watches and since when.
    pub(super) dormant: HashMap<WatchId, Instant>,
    /// Push ids whose session ended and that have not watched since, and
    /// in the order they went offline (bounded by `max_offline_push_ids`).
    pub(super) offline: Offline,
    /// Webhook watches by identity (`POST /watches` is idempotent).
    pub(super) webhooks: HashMap<WebhookKey, WatchId>,
    /// Webhook watches per access key (bounded by `max_webhooks_per_key`).
    pub(super) webhooks_per_key: HashMap<String, usize>,
    /// Every watch by its key's deadline, soonest first.
    pub(super) key_expiry: BTreeSet<(UnixMillis, WatchId)>,
    /// Per watched alias, the number of its latest re-point: the re-check
    /// of an older one is dropped.
    pub(super) alias_moves: HashMap<String, u64>,
    pub(super) next_move: u64,
    /// `effex_watches`: kept as watches come and go, read at scrape time.
    counts: Arc<WatchCounts>,
}

impl Drop for Watches {
    /// The hub that held the watches is gone (stopped, or failed): none is
    /// active any more.
    fn drop(&mut self) {
        self.counts.clear();
    }
}

impl Sink {
    /// The `outlet` label of this sink.
    fn outlet(&self) -> Outlet {
        match self {
            Sink::Socket { .. } => Outlet::Socket,
            Sink::Webhook(_) => Outlet::Webhook,
        }
    }
}

impl Watches {
    /// No watches yet; they will be counted in `counts`.
    pub(super) fn counting_into(counts: Arc<WatchCounts>) -> Self {
        let mut watches = Watches::default();
        watches.counts = counts;
        watches
    }

    /// Adds a new watch `id` (from [`Watches::new_watchable`]) to every
    /// index but the item's ([`Watches::index`] does that).
    pub(super) fn insert(&mut self, id: WatchId, entry: Entry) {
        self.key_expiry.insert((entry.key_valid_till, id));
        if let Some(idem) = &entry.idem {
            self.by_idem.insert(idem.clone(), id);
        }
        if let Sink::Socket { push_id, .. } = &entry.sink {
            self.by_push.entry(push_id.clone()).or_default().insert(id);
        }
        if let Some(alias) = &entry.alias {
            self.by_alias.entry(alias.clone()).or_default().insert(id);
        }
        if let Some(identity) = &entry.webhook {
            self.webhooks.insert(identity.clone(), id);
            *self.webhooks_per_key.entry(entry.key.clone()).or_default() += 1;
        }
        self.counts.add(entry.kind, entry.sink.outlet(), 1);
        if let Some(replaced) = self.watches.insert(id, entry) {
            // Ids are new each time (`new_watchable`); keep the count true anyway.
            self.counts.add(replaced.kind, replaced.sink.outlet(), -1);
        }
    }

    /// `push_id` has watches but no session: hold them for the grace, within
    /// `max_offline_push_ids` (the one offline longest is forgotten first).
    pub(super) fn went_offline(&mut self, push_id: Arc<str>, max_offline: usize) {
        self.offline.insert(push_id);
        while self.offline.len() > max_offline {
            let Some(oldest) = self.offline.pop_oldest() else {
                break;
            };
            let dormant: Vec<WatchId> = self
                .by_push
                .get(&oldest)
                .into_iter()
                .flatten()
                .filter(|id| self.dormant.contains_key(id))
                .copied()
                .collect();
            log::warn!(
                "hub: more than max_offline_push_ids ({}) push ids are offline; forgetting the \
                 {} watch(es) of {oldest:?}, offline longest (its client re-watches with `after`)",
                max_offline,
                dormant.len()
            );
            for id in dormant {
                self.remove(id, false);
            }
        }
    }

    /// The watch whose `watchable` string this is.
    pub(super) fn find(&self, watchable: &str) -> Option<WatchId> {
        let id = watchable
            .strip_prefix('w')
            .and_then(|s| s.get(..16))
            .and_then(|s| u64::from_str_radix(s, 16).ok())?;
        self.watches
            .get(&id)
            .filter(|e| e.watchable == watchable)
            .map(|_| id)
    }

    pub(super) fn new_watchable(&mut self) -> (WatchId, String) {
        self.next_id += 1;
        let id = self.next_id;
        // The random part makes a watchable unguessable, also across restarts.
        (id, format!("w{id:016x}{:016x}", rand::random::<u64>()))
    }

    pub(super) fn index(&mut self, id: WatchId) {
        if let Some(entry) = self.watches.get(&id) {
            let list = &mut self.by_item.entry(entry.item).or_default().by_kind[entry.kind.index()];
            if !list.contains(&id) {
                list.push(id);
            }
        }
    }

    pub(super) fn unindex(&mut self, id: WatchId) {
        let Some(entry) = self.watches.get(&id) else {
            return;
        };
        if let Some(index) = self.by_item.get_mut(&entry.item) {
            index.by_kind[entry.kind.index()].retain(|w| *w != id);
            if index.is_empty() {
                self.by_item.remove(&entry.item);
            }
        }
    }

    /// Forgets a watch; `cancel` also drops its pushes still queued.
    pub(super) fn remove(&mut self, id: WatchId, cancel: bool) -> Option<Entry> {
        self.unindex(id);
        let entry = self.watches.remove(&id)?;
        self.counts.add(entry.kind, entry.sink.outlet(), -1);
        if cancel {
            entry.view.cancel();
        }
        if let Some(idem) = &entry.idem {
            self.by_idem.remove(idem);
        }
        self.key_expiry.remove(&(entry.key_valid_till, id));
        match &entry.sink {
            Sink::Socket { push_id, .. } => {
                if let Some(set) = self.by_push.get_mut(push_id) {
                    set.remove(&id);
                    if set.is_empty() {
                        self.by_push.remove(push_id);
                        self.offline.remove(push_id);
                    }
                }
            }
            Sink::Webhook(_) => {
                if let Some(identity) = &entry.webhook {
                    self.webhooks.remove(identity);
                }
                if let Some(n) = self.webhooks_per_key.get_mut(&entry.key) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.webhooks_per_key.remove(&entry.key);
                    }
                }
            }
        }
        if let Some(alias) = &entry.alias {
            if let Some(set) = self.by_alias.get_mut(alias) {
                set.remove(&id);
                if set.is_empty() {
                    self.by_alias.remove(alias);
                    self.alias_moves.remove(alias);
                }
            }
        }
        self.dormant.remove(&id);
        log::debug!("hub: watch {} ended", entry.watchable);
        Some(entry)
    }

    /// A new view for an entry (after a re-watch or an alias move).
    pub(super) fn view(
        id: WatchId,
        head: &Head<'_>,
        message: Option<Box<str>>,
        with_value: bool,
        live: Arc<AtomicBool>,
        key_valid_till: UnixMillis,
    ) -> Arc<WatchView> {
        let head = PushHead::new(head.watchable, head.event, &head.id.to_string(), head.alias);
        Arc::new(WatchView {
            watch: id,
            head,
            message,
            with_value,
            live,
            key_valid_till,
        })
    }

    /// A new view for a watch; `None` keeps that part as it was.
    pub(super) fn refresh_view(
        &mut self,
        id: WatchId,
        message: Option<Option<Box<str>>>,
        with_value: Option<bool>,
    ) {
        if let Some(entry) = self.watches.get_mut(&id) {
            let old = &entry.view;
            entry.view = Self::view(
                id,
                &Head {
                    watchable: &entry.watchable,
                    event: entry.kind,
                    id: entry.item,
                    alias: entry.alias.as_deref(),
                },
                message.unwrap_or_else(|| old.message.clone()),
                with_value.unwrap_or(old.with_value),
                old.live.clone(),
                entry.key_valid_till,
            );
        }
    }

    /// Records when a watch's key expires (its view is refreshed after).
    pub(super) fn set_key_valid_till(&mut self, id: WatchId, till: UnixMillis) {
        if let Some(entry) = self.watches.get_mut(&id) {
            self.key_expiry.remove(&(entry.key_valid_till, id));
            entry.key_valid_till = till;
            self.key_expiry.insert((till, id));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offline_push_ids_leave_oldest_first() {
        let mut offline = Offline::default();
        for push_id in ["a", "b", "a", "c"] {
            offline.insert(push_id.into());
        }
        assert_eq!(offline.len(), 3);
        offline.remove("b");
        assert_eq!(offline.pop_oldest().as_deref(), Some("a"));
        assert_eq!(offline.pop_oldest().as_deref(), Some("c"));
        assert_eq!(offline.pop_oldest(), None);
        assert_eq!(offline.len(), 0);
    }

    /// A socket watch of `push_id` on `item` (made on `alias` if any).
    fn socket(w: &mut Watches, push_id: &str, item: u128, alias: Option<&str>) -> WatchId {
        let (id, watchable) = w.new_watchable();
        let kind = EventKind::Update;
        let view = Watches::view(
            id,
            &Head {
                watchable: &watchable,
                event: kind,
                id: ItemId(item),
                alias,
            },
            None,
            false,
            Arc::new(AtomicBool::new(true)),
            UnixMillis::from_millis(u64::MAX - u64::try_from(item).unwrap_or(0)),
        );
        let push_id: Arc<str> = push_id.into();
        let idem = IdemKey {
            push_id: push_id.clone(),
            kind,
            target: alias.map_or_else(|| ItemId(item).to_string(), str::to_owned),
            key: "k".into(),
        };
        w.insert(
            id,
            Entry {
                watchable,
                kind,
                item: ItemId(item),
                alias: alias.map(str::to_owned),
                key: "k".into(),
                sink: Sink::Socket {
                    push_id,
                    session: None,
                },
                key_valid_till: view.key_valid_till,
                view,
                cursor: 0,
                ending: false,
                replaying: false,
                idem: Some(idem),
                webhook: None,
                epoch: 0,
            },
        );
        w.index(id);
        id
    }

    fn watchers(w: &Watches, item: u128) -> Vec<WatchId> {
        w.by_item
            .get(&ItemId(item))
            .map(|i| i.by_kind[EventKind::Update.index()].clone())
            .unwrap_or_default()
    }

    #[test]
    fn a_watch_is_found_by_its_watchable_and_indexed_once() {
        let mut w = Watches::default();
        let id = socket(&mut w, "p", 1, None);
        let watchable = w.watches[&id].watchable.clone();
        assert_eq!(w.find(&watchable), Some(id));
        assert_eq!(w.find("w0000000000000001ffffffffffffffff"), None);
        assert_eq!(w.find("nonsense"), None);
        w.index(id);
        assert_eq!(watchers(&w, 1), vec![id]);
        w.unindex(id);
        assert!(w.by_item.is_empty());
    }

    #[test]
    fn removing_a_watch_clears_every_index() {
        let mut w = Watches::default();
        let id = socket(&mut w, "p", 1, Some("board"));
        w.alias_moves.insert("board".into(), 1);
        w.dormant.insert(id, Instant::now());
        w.offline.insert("p".into());
        assert!(w.remove(id, true).is_some_and(|e| !e.view.is_live()));
        assert!(w.watches.is_empty() && w.by_item.is_empty() && w.by_idem.is_empty());
        assert!(w.by_push.is_empty() && w.by_alias.is_empty() && w.alias_moves.is_empty());
        assert!(w.dormant.is_empty() && w.key_expiry.is_empty());
        assert_eq!(w.offline.len(), 0);
        assert!(w.remove(id, true).is_none());
    }

    #[test]
    fn too_many_offline_push_ids_forget_the_oldest_ones_dormant_watches() {
        let mut w = Watches::default();
        let old = socket(&mut w, "old", 1, None);
        let new = socket(&mut w, "new", 2, None);
        for id in [old, new] {
            w.dormant.insert(id, Instant::now());
        }
        w.went_offline("old".into(), 1);
        w.went_offline("new".into(), 1);
        assert!(!w.watches.contains_key(&old));
        assert!(w.watches.contains_key(&new));
        assert!(watchers(&w, 1).is_empty());
    }

    #[test]
    fn key_deadlines_are_kept_in_order_and_moved() {
        let mut w = Watches::default();
        let a = socket(&mut w, "p", 1, None);
        let b = socket(&mut w, "p", 2, None);
        w.set_key_valid_till(a, UnixMillis::from_millis(5));
        w.set_key_valid_till(b, UnixMillis::from_millis(3));
        let order: Vec<WatchId> = w.key_expiry.iter().map(|(_, id)| *id).collect();
        assert_eq!(order, vec![b, a]);
        assert_eq!(w.watches[&a].key_valid_till.as_millis(), 5);
        w.refresh_view(a, Some(Some("{}".into())), Some(true));
        assert_eq!(w.watches[&a].view.key_valid_till.as_millis(), 5);
        assert_eq!(w.watches[&a].view.message.as_deref(), Some("{}"));
    }
}
