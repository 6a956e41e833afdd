//! Pod-route origination: the pod routes the kernel holds (see
//! [`crate::netlink::watch_pod_routes`]) become local routes of the speaker, added and
//! withdrawn as the CNI adds and deletes them.
//!
//! A reload may change the pod CIDRs: the watcher starts again with the new ones, and
//! once its first dump is complete, the pods it no longer reports are withdrawn.
//!
//! With `[dataplane] attach-pods`, the pods' host-side interfaces get the XDP program as
//! their routes come and go (see [`PodLinks`]). The end of the first dump tells the
//! speaker that End-of-RIB may go out ([`Command::LocalSynced`]).

use std::collections::{HashMap, HashSet};

use ipnet::IpNet;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::pod_links::PodLinks;
use crate::{
    netlink::{Event, PodRoute, PodRouteConfig, Watch, WatchOptions, watch_pod_routes},
    programmer::LocalTarget,
    speaker::Command,
};

/// Starts origination for `cidrs` (none: nothing until a reload gives some). Send new
/// CIDRs on the returned channel.
pub fn spawn(
    cidrs: Vec<IpNet>,
    speaker: mpsc::Sender<Command>,
    pod_links: Option<PodLinks>,
) -> anyhow::Result<mpsc::Sender<Vec<IpNet>>> {
    let watch = start(&cidrs)?;
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(run(watch, rx, speaker, pod_links));
    Ok(tx)
}

fn start(cidrs: &[IpNet]) -> anyhow::Result<Option<Watch<PodRoute>>> {
    if cidrs.is_empty() {
        return Ok(None);
    }
    Ok(Some(watch_pod_routes(
        PodRouteConfig::new(cidrs.to_vec()),
        &WatchOptions::default(),
    )?))
}

async fn next(watch: &mut Option<Watch<PodRoute>>) -> Option<Result<Event<PodRoute>, String>> {
    match watch {
        Some(w) => w.next().await.map(|r| r.map_err(|e| e.to_string())),
        None => std::future::pending().await,
    }
}

async fn run(
    mut watch: Option<Watch<PodRoute>>,
    mut changes: mpsc::Receiver<Vec<IpNet>>,
    speaker: mpsc::Sender<Command>,
    mut pod_links: Option<PodLinks>,
) {
    let mut first_dump = true;
    // The pods originated, with their routes (for the pod interfaces' attachments).
    let mut originated: HashMap<IpNet, PodRoute> = HashMap::new();
    // After a CIDR change: the pods the new watcher reported before its dump ended.
    let mut resync: Option<HashSet<IpNet>> = None;
    loop {
        let cmd = tokio::select! {
            cidrs = changes.recv() => {
                let Some(cidrs) = cidrs else { return };
                match start(&cidrs) {
                    Ok(w) => {
                        watch = w;
                        resync = Some(HashSet::new());
                        if watch.is_none() {
                            for (prefix, r) in originated.drain() {
                                if let Some(l) = pod_links.as_mut() {
                                    l.route_removed(&r);
                                }
                                if speaker.send(Command::WithdrawLocal { prefix }).await.is_err() {
                                    return;
                                }
                            }
                            resync = None;
                        }
                    }
                    Err(e) => warn!("pod route watcher for {cidrs:?}: {e}"),
                }
                continue;
            }
            ev = next(&mut watch) => ev,
        };
        let cmd = match cmd {
            Some(Ok(Event::Added(r) | Event::Changed(r))) => {
                if let Some(seen) = &mut resync {
                    seen.insert(r.prefix);
                }
                originated.insert(r.prefix, r.clone());
                if let Some(l) = pod_links.as_mut() {
                    l.route_added(&r);
                }
                Command::Originate {
                    prefix: r.prefix,
                    target: LocalTarget::Pod { ifindex: r.ifindex },
                }
            }
            Some(Ok(Event::Removed(r))) => {
                originated.remove(&r.prefix);
                if let Some(l) = pod_links.as_mut() {
                    l.route_removed(&r);
                }
                Command::WithdrawLocal { prefix: r.prefix }
            }
            Some(Ok(Event::Synced)) => {
                if std::mem::take(&mut first_dump)
                    && speaker.send(Command::LocalSynced).await.is_err()
                {
                    return;
                }
                let Some(seen) = resync.take() else { continue };
                let gone: Vec<IpNet> = originated
                    .keys()
                    .filter(|p| !seen.contains(p))
                    .copied()
                    .collect();
                debug!("pod CIDRs changed: withdrawing {} pods", gone.len());
                for prefix in gone {
                    if let (Some(r), Some(l)) = (originated.remove(&prefix), pod_links.as_mut()) {
                        l.route_removed(&r);
                    }
                    if speaker
                        .send(Command::WithdrawLocal { prefix })
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                continue;
            }
            Some(Err(e)) => {
                warn!("pod route watcher: {e}");
                continue;
            }
            None => {
                warn!("pod route watcher stopped");
                watch = None;
                continue;
            }
        };
        if speaker.send(cmd).await.is_err() {
            return;
        }
    }
}
