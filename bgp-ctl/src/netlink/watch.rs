//! Mirroring a kernel table: dump, then follow its multicast notifications; after a
//! receive-queue overrun, re-dump and report only the difference.
//!
//! Ordering argument: the subscription is opened before the dump, so every change after
//! the dump's snapshot is also queued as a notification. Notifications are absolute
//! ("this entry now exists with these values" / "it is gone"), so replaying queued ones
//! that predate the snapshot only repeats states already reported, and the last one
//! for each key wins. After an overrun the queue has a gap, so it is discarded with the
//! old socket: a fresh subscription is opened first, then the table is re-dumped.

use std::{collections::BTreeMap, fmt::Debug};

use netlink_packet_route::RouteNetlinkMessage;
use tokio::{sync::mpsc, task::JoinHandle};
use tracing::{debug, warn};

use super::{
    NetlinkError,
    socket::{NetlinkSocket, Notifications, Received},
};

/// A change in a mirrored kernel table, in the order the kernel made them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<T> {
    /// An entry appeared.
    Added(T),
    /// An entry already reported changed: this is its new value (same key).
    Changed(T),
    /// An entry disappeared: this is its last value.
    Removed(T),
    /// Everything in the kernel table at the time of a dump has been reported: sent
    /// after the initial dump and again after each re-dump following an overrun.
    Synced,
}

/// Tuning of a watcher.
#[derive(Debug, Clone)]
pub struct WatchOptions {
    /// Receive buffer of the notification socket, in bytes. Overruns (bursts larger
    /// than this) are survived by re-dumping, but cost a dump.
    pub receive_buffer: usize,
    /// Events buffered for the consumer. A consumer that falls behind stops the reading
    /// of notifications, which then ends in an overrun and a re-dump.
    pub channel: usize,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            receive_buffer: 4 << 20,
            channel: 4096,
        }
    }
}

/// The last reported value of each entry of a kernel table, and the events that keep a
/// consumer's copy equal to it.
#[derive(Debug)]
pub(crate) struct Mirror<K, V> {
    entries: BTreeMap<K, V>,
}

impl<K: Ord + Clone, V: Clone + PartialEq> Mirror<K, V> {
    pub fn new() -> Self {
        Self {
            entries: BTreeMap::new(),
        }
    }

    /// Records `value` under `key`: `Added` if new, `Changed` if different, else nothing.
    pub fn set(&mut self, key: K, value: V, out: &mut Vec<Event<V>>) {
        match self.entries.insert(key, value.clone()) {
            None => out.push(Event::Added(value)),
            Some(old) if old != value => out.push(Event::Changed(value)),
            Some(_) => {}
        }
    }

    /// Forgets `key`: `Removed` if it was there.
    pub fn remove(&mut self, key: &K, out: &mut Vec<Event<V>>) {
        if let Some(old) = self.entries.remove(key) {
            out.push(Event::Removed(old));
        }
    }

    /// Replaces everything with `fresh` (a re-dump), reporting only the differences.
    pub fn replace_all(&mut self, fresh: BTreeMap<K, V>, out: &mut Vec<Event<V>>) {
        let old = std::mem::take(&mut self.entries);
        for (key, value) in &old {
            if !fresh.contains_key(key) {
                out.push(Event::Removed(value.clone()));
            }
        }
        for (key, value) in &fresh {
            match old.get(key) {
                None => out.push(Event::Added(value.clone())),
                Some(previous) if previous != value => out.push(Event::Changed(value.clone())),
                Some(_) => {}
            }
        }
        self.entries = fresh;
    }

    #[cfg(test)]
    pub fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.values()
    }
}

/// A kernel table a watcher mirrors.
pub(crate) trait KernelTable: Send + 'static {
    /// What the consumer is told about.
    type Item: Clone + PartialEq + Debug + Send + 'static;
    /// Name in logs.
    const NAME: &'static str;
    /// The `RTNLGRP_*` multicast groups to follow.
    fn groups(&self) -> Vec<u32>;
    /// A route protocol whose route notifications the kernel should not even deliver.
    fn ignored_protocol(&self) -> Option<u8> {
        None
    }
    /// The dump requests that together list the table, in the order to apply them.
    fn dumps(&self) -> Vec<(&'static str, RouteNetlinkMessage)>;
    /// Rebuilds the table from the messages of all dumps, reporting the differences.
    fn load(&mut self, dumped: Vec<RouteNetlinkMessage>, out: &mut Vec<Event<Self::Item>>);
    /// Applies one notification.
    fn apply(&mut self, received: Received, out: &mut Vec<Event<Self::Item>>);
}

/// A stream of [`Event`]s of one kernel table, fed by a tokio task that owns the
/// netlink sockets. Dropping it stops the task.
#[derive(Debug)]
pub struct Watch<T> {
    events: mpsc::Receiver<Result<Event<T>, NetlinkError>>,
    task: JoinHandle<()>,
}

impl<T> Watch<T> {
    /// The next event; `None` once the watcher stopped (after reporting its error).
    /// Cancel-safe, so it can sit in a `select!`.
    pub async fn next(&mut self) -> Option<Result<Event<T>, NetlinkError>> {
        self.events.recv().await
    }
}

impl<T> Drop for Watch<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Opens the sockets (errors are returned here) and starts mirroring `table`: the
/// stream begins with the initial dump as `Added` events and a `Synced`.
pub(crate) fn start<T: KernelTable>(
    table: T,
    options: &WatchOptions,
) -> Result<Watch<T::Item>, NetlinkError> {
    let groups = table.groups();
    let ignored = table.ignored_protocol();
    let subscription = NetlinkSocket::subscribe(&groups, options.receive_buffer, ignored)?;
    let requests = NetlinkSocket::requests()?;
    let (tx, events) = mpsc::channel(options.channel.max(1));
    let receive_buffer = options.receive_buffer;
    let task = tokio::spawn(async move {
        if let Err(e) = run(table, subscription, requests, groups, receive_buffer, &tx).await {
            warn!(error = %e, "{} watcher stopped", T::NAME);
            let _ = tx.send(Err(e)).await;
        }
    });
    Ok(Watch { events, task })
}

/// Returned by [`run`] when the consumer went away: not an error to report.
struct ConsumerGone;

async fn run<T: KernelTable>(
    mut table: T,
    mut subscription: NetlinkSocket,
    mut requests: NetlinkSocket,
    groups: Vec<u32>,
    receive_buffer: usize,
    tx: &mpsc::Sender<Result<Event<T::Item>, NetlinkError>>,
) -> Result<(), NetlinkError> {
    let mut out = Vec::new();
    load(&mut table, &mut requests, &mut out).await?;
    if deliver::<T>(tx, &mut out).await.is_err() {
        return Ok(());
    }
    loop {
        match subscription.notifications().await? {
            Notifications::Messages(messages) => {
                for received in messages {
                    table.apply(received, &mut out);
                }
            }
            Notifications::Overrun => {
                warn!(
                    "{} notifications overran the socket buffer: re-dumping",
                    T::NAME
                );
                // New subscription first, so nothing after the dump is missed.
                subscription =
                    NetlinkSocket::subscribe(&groups, receive_buffer, table.ignored_protocol())?;
                load(&mut table, &mut requests, &mut out).await?;
            }
        }
        if deliver::<T>(tx, &mut out).await.is_err() {
            return Ok(());
        }
    }
}

async fn load<T: KernelTable>(
    table: &mut T,
    requests: &mut NetlinkSocket,
    out: &mut Vec<Event<T::Item>>,
) -> Result<(), NetlinkError> {
    let mut dumped = Vec::new();
    for (what, request) in table.dumps() {
        dumped.extend(requests.dump(what, request).await?);
    }
    table.load(dumped, out);
    out.push(Event::Synced);
    Ok(())
}

async fn deliver<T: KernelTable>(
    tx: &mpsc::Sender<Result<Event<T::Item>, NetlinkError>>,
    out: &mut Vec<Event<T::Item>>,
) -> Result<(), ConsumerGone> {
    for event in out.drain(..) {
        debug!(table = T::NAME, ?event, "kernel table event");
        tx.send(Ok(event)).await.map_err(|_| ConsumerGone)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(
        m: &mut Mirror<u32, &'static str>,
        f: impl FnOnce(&mut Mirror<u32, &'static str>, &mut Vec<Event<&'static str>>),
    ) -> Vec<Event<&'static str>> {
        let mut out = Vec::new();
        f(m, &mut out);
        out
    }

    #[test]
    fn set_reports_new_and_changed_values_only() {
        let mut m = Mirror::new();
        assert_eq!(
            events(&mut m, |m, o| m.set(1, "a", o)),
            vec![Event::Added("a")]
        );
        assert_eq!(events(&mut m, |m, o| m.set(1, "a", o)), vec![]);
        assert_eq!(
            events(&mut m, |m, o| m.set(1, "b", o)),
            vec![Event::Changed("b")]
        );
        assert_eq!(
            events(&mut m, |m, o| m.remove(&1, o)),
            vec![Event::Removed("b")]
        );
        assert_eq!(events(&mut m, |m, o| m.remove(&1, o)), vec![]);
    }

    #[test]
    fn replace_all_reports_the_difference_with_a_redump() {
        let mut m = Mirror::new();
        let mut sink = Vec::new();
        m.set(1, "kept", &mut sink);
        m.set(2, "gone", &mut sink);
        m.set(3, "old", &mut sink);
        let fresh = BTreeMap::from([(1, "kept"), (3, "new"), (4, "added")]);
        let mut out = events(&mut m, |m, o| m.replace_all(fresh, o));
        out.sort_by_key(|e| format!("{e:?}"));
        assert_eq!(
            out,
            vec![
                Event::Added("added"),
                Event::Changed("new"),
                Event::Removed("gone")
            ]
        );
        assert_eq!(
            m.values().copied().collect::<Vec<_>>(),
            vec!["kept", "new", "added"]
        );
        assert_eq!(
            events(&mut m, |m, o| m.replace_all(
                BTreeMap::from([(1, "kept"), (3, "new"), (4, "added")]),
                o
            )),
            vec![]
        );
    }
}
