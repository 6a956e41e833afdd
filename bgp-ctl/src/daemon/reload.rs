//! Reloading the configuration file (SIGHUP or `bgp-ctl reload`): read and validate it
//! again, and apply the difference to the running daemon.
//!
//! A file with mistakes changes nothing: the daemon keeps running with what it has and
//! the errors (each with its line and field) go back to the caller and the log. Peers
//! and policies go to the speaker (see [`crate::speaker::Reconfiguration`]); static
//! routes, aggregates and pod CIDRs are originated or withdrawn here. Settings that
//! only apply at start (listen addresses, dataplane, control socket, HTTP, BFD timers)
//! are reported as changed and not applied.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use ipnet::IpNet;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::specs;
use crate::{
    api::protocol::ReloadReport,
    config::{self, Config},
    programmer::LocalTarget,
    speaker::{Command, Reconfiguration},
};

/// The running configuration and where to send its changes.
pub struct Reloader {
    path: PathBuf,
    current: Config,
    speaker: mpsc::Sender<Command>,
    pods: mpsc::Sender<Vec<IpNet>>,
}

impl Reloader {
    /// A reloader for the config at `path`, currently `current`.
    pub fn new(
        path: &Path,
        current: Config,
        speaker: mpsc::Sender<Command>,
        pods: mpsc::Sender<Vec<IpNet>>,
    ) -> Self {
        Reloader {
            path: path.to_path_buf(),
            current,
            speaker,
            pods,
        }
    }

    /// Reads the file again and applies what changed. An error leaves everything as it
    /// was and says why.
    pub async fn reload(&mut self) -> Result<ReloadReport, String> {
        let loaded = config::load(&self.path).map_err(|e| format!("{e}\nnothing changed"))?;
        for w in &loaded.warnings {
            warn!("{}: {w}", self.path.display());
        }
        let new = loaded.config;
        let reconfiguration = Reconfiguration {
            settings: specs::speaker_settings(&new),
            peers: specs::peers(&new, false).map_err(|e| format!("{e:#}\nnothing changed"))?,
            dynamic: specs::dynamic(&new, false).map_err(|e| format!("{e:#}\nnothing changed"))?,
        };
        let mut changes = not_applied(&self.current, &new);
        let (tx, rx) = oneshot::channel();
        self.speaker
            .send(Command::Reconfigure(Box::new(reconfiguration), tx))
            .await
            .map_err(|_| "the speaker has stopped".to_string())?;
        let mut report = rx
            .await
            .map_err(|_| "the speaker has stopped".to_string())?;
        changes.append(&mut report.changes);
        report.changes = changes;
        self.originations(&new, &mut report).await;
        if self.current.origination.pod_cidrs != new.origination.pod_cidrs {
            report.changes.push(format!(
                "origination pod-cidrs: {:?} -> {:?}",
                self.current.origination.pod_cidrs, new.origination.pod_cidrs
            ));
            let _ = self.pods.send(new.origination.pod_cidrs.clone()).await;
        }
        for c in &report.changes {
            info!("reload: {c}");
        }
        for s in &report.sessions_reset {
            info!("reload: session {s} reset");
        }
        if report.changes.is_empty() {
            info!("reload: no changes");
        }
        self.current = new;
        Ok(report)
    }

    /// Static routes and aggregates: originate the new ones, withdraw the removed ones.
    async fn originations(&self, new: &Config, report: &mut ReloadReport) {
        let old_statics: BTreeSet<IpNet> = self
            .current
            .origination
            .static_routes
            .iter()
            .copied()
            .collect();
        let new_statics: BTreeSet<IpNet> = new.origination.static_routes.iter().copied().collect();
        let old_aggs: BTreeSet<IpNet> = self
            .current
            .aggregate
            .iter()
            .map(|a| *a.prefix.get_ref())
            .collect();
        let new_aggs: BTreeSet<IpNet> = new.aggregate.iter().map(|a| *a.prefix.get_ref()).collect();
        let mut cmds = Vec::new();
        for (old, new, target, what) in [
            (
                &old_statics,
                &new_statics,
                LocalTarget::Kernel,
                "static route",
            ),
            (&old_aggs, &new_aggs, LocalTarget::Blackhole, "aggregate"),
        ] {
            for prefix in old.difference(new) {
                report.changes.push(format!("{what} {prefix}: removed"));
                cmds.push(Command::WithdrawLocal { prefix: *prefix });
            }
            for prefix in new.difference(old) {
                report.changes.push(format!("{what} {prefix}: added"));
                cmds.push(Command::Originate {
                    prefix: *prefix,
                    target,
                });
            }
        }
        for c in cmds {
            if self.speaker.send(c).await.is_err() {
                return;
            }
        }
    }
}

/// Settings read only at start that differ.
fn not_applied(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |differs: bool, what: &str| {
        if differs {
            out.push(format!(
                "{what}: changed, not applied (restart the daemon to apply)"
            ));
        }
    };
    check(old.listen != new.listen, "listen");
    check(old.dataplane != new.dataplane, "dataplane");
    check(old.api != new.api, "api");
    check(old.http != new.http, "http");
    check(old.health != new.health, "health");
    check(old.bfd != new.bfd, "bfd");
    out
}
