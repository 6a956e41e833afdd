//! Pod-route origination: the pod routes the kernel holds (see
//! [`crate::netlink::watch_pod_routes`]) become local routes of the speaker, added and
//! withdrawn as the CNI adds and deletes them.
//!
//! A reload may change the pod CIDRs: the watcher starts again with the new ones, and
//! once its first dump is complete, the pods it no longer reports are withdrawn.

use std::collections::HashSet;

use ipnet::IpNet;
use tokio::sync::mpsc;
use tracing::{debug, warn};

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
) -> anyhow::Result<mpsc::Sender<Vec<IpNet>>> {
    let watch = start(&cidrs)?;
    let (tx, rx) = mpsc::channel(4);
    tokio::spawn(run(watch, rx, speaker));
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
) {
    let mut originated: HashSet<IpNet> = HashSet::new();
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
                            for prefix in originated.drain() {
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
                originated.insert(r.prefix);
                Command::Originate {
                    prefix: r.prefix,
                    target: LocalTarget::Pod { ifindex: r.ifindex },
                }
            }
            Some(Ok(Event::Removed(r))) => {
                originated.remove(&r.prefix);
                Command::WithdrawLocal { prefix: r.prefix }
            }
            Some(Ok(Event::Synced)) => {
                let Some(seen) = resync.take() else { continue };
                let gone: Vec<IpNet> = originated.difference(&seen).copied().collect();
                debug!("pod CIDRs changed: withdrawing {} pods", gone.len());
                for prefix in gone {
                    originated.remove(&prefix);
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
