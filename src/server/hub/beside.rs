//! The store calls the hub makes, each run in a task beside the hub's loop
//! (never awaited inside it) and reported back as a [`Done`].
//!
//! **Bound.** Each call belongs to something already bounded: a `watch`
//! call (at most `session::MAX_HUB_CALLS` in flight per session), a
//! `POST /watches`, one replay window per watch, one alias re-check per
//! watch of a re-pointed alias, and one catch-up at a time.
//! So the [`Done`] channel holds at most one answer per such call.

use std::sync::Arc;

use super::failure;
use super::hold::CallId;
use super::recent::Ticket;
use super::{SessionLink, WatchId};
use crate::protocol::messages::{Failure, Watch};
use crate::protocol::time::UnixMillis;
use crate::server::outlet::WebhookSpec;
use crate::store::{Event, EventKind, EventQuery, EventsPage, ItemId, ItemRef, Store, StoreError};

/// What a `watch` check found in the store.
pub(super) struct Checked {
    /// The item the watch reports (the alias's item for an alias).
    pub(super) item: ItemId,
    /// The alias the watch was made on, if any.
    pub(super) alias: Option<String>,
    /// The store's latest seq at the check (the ack's `seq`).
    pub(super) latest: u64,
    /// The logged events after `after`, when it was given.
    pub(super) page: Option<EventsPage>,
    /// When the watch's key expires.
    pub(super) key_valid_till: UnixMillis,
}

/// A `watch` call whose store part is done.
pub(super) struct WatchDone {
    pub(super) session: Arc<SessionLink>,
    pub(super) push_id: Arc<str>,
    pub(super) ack_id: u64,
    pub(super) watch: Watch,
    /// The watch `message` as JSON text (checked before the call).
    pub(super) message: Option<Box<str>>,
    pub(super) ticket: Ticket,
    /// The call, whose session's later messages wait for its answer.
    pub(super) call: CallId,
    pub(super) result: Result<Checked, Failure>,
}

/// A `POST /watches` whose key check is done.
pub(super) struct WebhookDone {
    pub(super) key: String,
    pub(super) spec: WebhookSpec,
    pub(super) message: Option<Box<str>>,
    pub(super) reply: tokio::sync::oneshot::Sender<Result<String, Failure>>,
    pub(super) ticket: Ticket,
    pub(super) result: Result<ItemRef, StoreError>,
}

/// An alias re-check of one watch that is done.
pub(super) struct AliasDone {
    pub(super) watch: WatchId,
    pub(super) alias: String,
    /// The item the alias names now.
    pub(super) item: ItemId,
    /// Events of `item` after this seq are the watch's.
    pub(super) since: u64,
    /// The hub's number for this re-point (a newer one wins).
    pub(super) number: u64,
    pub(super) ticket: Ticket,
    /// The watch's session and the call held for it (an active socket watch).
    pub(super) call: Option<(Arc<SessionLink>, CallId)>,
    /// The key's expiry against `item`, and the new item's logged events
    /// after `since` (for an active watch).
    pub(super) result: Result<(UnixMillis, Option<EventsPage>), StoreError>,
}

/// A store call that ran beside the hub, reporting back.
pub(super) enum Done {
    Watch(Box<WatchDone>),
    Webhook(Box<WebhookDone>),
    /// A replay window (or a catch-up of one watch) read from the log.
    Window {
        watch: WatchId,
        epoch: u64,
        item: ItemId,
        ticket: Ticket,
        result: Result<EventsPage, StoreError>,
    },
    Alias(Box<AliasDone>),
    /// What the hub missed while its receiver lagged.
    CaughtUp(CaughtUp),
}

/// What the catch-up after a lag found.
pub(super) struct CaughtUp {
    /// The hub's last handled seq when the lag was noticed.
    pub(super) since: u64,
    /// What each watched alias names now (those that resolve): a re-point
    /// the lag dropped shows as a watch on another item.
    pub(super) aliases: Vec<(String, ItemId)>,
    /// The watched items' events after `since`, in seq order.
    pub(super) events: Vec<Event>,
}

/// `watch`'s store part: `check_read`, then the backlog after `after`. A
/// gone item is 404, unless `after` is below its final event of this
/// (remove or expire) kind: then that event is replayed.
pub(super) async fn check_watch(store: Arc<dyn Store>, watch: &Watch) -> Result<Checked, Failure> {
    let kind = watch.event;
    let query = |since| EventQuery {
        since,
        kind: Some(kind),
        with_value: watch.with_value,
    };
    match store.check_read(&watch.key, &watch.id).await {
        Ok(ItemRef {
            id,
            alias,
            seq,
            key_valid_till,
            ..
        }) => {
            let page = match watch.after {
                Some(after) => Some(
                    store
                        .events(&watch.key, &id.to_string(), query(after))
                        .await
                        .map_err(|e| failure(&e))?,
                ),
                None => None,
            };
            Ok(Checked {
                item: id,
                alias,
                latest: seq,
                page,
                key_valid_till,
            })
        }
        Err(StoreError::NotFound(message)) => {
            let not_found = || Failure::new(404, format!("not found: {message}"));
            let after = watch.after.ok_or_else(not_found)?;
            if kind == EventKind::Update {
                return Err(not_found());
            }
            let page = store
                .events(&watch.key, &watch.id, query(after))
                .await
                .map_err(|_| not_found())?;
            if !page.events.iter().any(|e| e.kind == kind) {
                return Err(not_found());
            }
            let alias = (watch.id.parse::<ItemId>().is_err()).then(|| watch.id.clone());
            Ok(Checked {
                item: page.id,
                alias,
                latest: page.latest,
                page: Some(page),
                // The watch ends with that final push: its key's deadline
                // does not matter.
                key_valid_till: UnixMillis::MAX,
            })
        }
        Err(e) => Err(failure(&e)),
    }
}

/// An alias re-check: may `key` read `item`, and (for an active watch) the
/// item's logged events after `since`.
pub(super) async fn recheck_alias(
    store: Arc<dyn Store>,
    key: String,
    item: ItemId,
    since: Option<u64>,
) -> Result<(UnixMillis, Option<EventsPage>), StoreError> {
    let id = item.to_string();
    let checked = store.check_read(&key, &id).await?;
    let page = match since {
        Some(since) => {
            let query = EventQuery {
                since,
                kind: None,
                with_value: true,
            };
            match store.events(&key, &id, query).await {
                Ok(page) => Some(page),
                Err(e) => {
                    log::debug!("hub: alias moved to {item}; no log of it: {e}");
                    None
                }
            }
        }
        None => None,
    };
    Ok((checked.key_valid_till, page))
}

/// The catch-up after a lag: what every watched alias names now (re-points
/// have no log), then for every watched item its events after `since`, read
/// with the first of its watches' keys that may.
pub(super) async fn catch_up(
    store: Arc<dyn Store>,
    items: Vec<(ItemId, Vec<String>)>,
    aliases: Vec<String>,
    since: u64,
) -> CaughtUp {
    let mut resolved = Vec::with_capacity(aliases.len());
    for alias in aliases {
        match store.resolve(&alias).await {
            Ok(item) => resolved.push((alias, item)),
            Err(e) => log::debug!("hub: catch-up of alias {alias:?}: {e}"),
        }
    }
    let mut found = Vec::new();
    for (item, keys) in items {
        let query = EventQuery {
            since,
            kind: None,
            with_value: true,
        };
        for key in keys {
            match store.events(&key, &item.to_string(), query.clone()).await {
                Ok(page) => {
                    found.extend(page.events);
                    break;
                }
                Err(e) => log::debug!("hub: catch-up of item {item} with one key: {e}"),
            }
        }
    }
    found.sort_by_key(|e| e.seq);
    CaughtUp {
        since,
        aliases: resolved,
        events: found,
    }
}
