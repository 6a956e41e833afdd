//! The daemon's side of health and metrics: it gathers a [`HealthInput`] from what the
//! kernel says now (the uplinks' XDP attachments) and what the speaker says now (its
//! peers), for `bgp-ctl health`, and keeps a fresh snapshot for the HTTP endpoints
//! (`/healthz`, `/readyz`, `/metrics`), which answer from it without waiting.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context;
use tokio::{sync::mpsc, time::timeout};
use tracing::{info, warn};

use super::fib_task::FibQuery;
use crate::{
    api::{
        Reply, Request,
        protocol::{HealthView, NeighborSummary, StatsView},
    },
    fib::AttachMode,
    health::{self, ConfigStatus, Health, HealthInput, PeerStatus, UplinkStatus},
    http::{self, Response},
    metrics,
    netlink::{XdpAttachment, xdp_attachments},
    speaker::Command,
};

/// How long the speaker may take to answer before the agent counts as stalled (not
/// live). It answers within milliseconds even while it loads a full table: it reads
/// its command queue between chunks of work.
const STALL_LIMIT: Duration = Duration::from_secs(10);
/// How often the HTTP endpoints' snapshot is taken.
const REFRESH: Duration = Duration::from_secs(2);

/// Asks the speaker and the kernel.
#[derive(Clone)]
pub struct Probe {
    speaker: mpsc::Sender<Command>,
    fib: mpsc::Sender<FibQuery>,
    uplinks: Vec<(String, AttachMode)>,
    grace: Duration,
}

/// What the speaker answered, and when it was asked.
struct Peers {
    neighbors: Option<Vec<NeighborSummary>>,
    asked: Instant,
}

impl Probe {
    /// `uplinks`: the configured ones and the mode the config asks for; `grace`: how
    /// long a configured peer may take to come up.
    pub fn new(
        speaker: mpsc::Sender<Command>,
        fib: mpsc::Sender<FibQuery>,
        uplinks: Vec<(String, AttachMode)>,
        grace: Duration,
    ) -> Self {
        Probe {
            speaker,
            fib,
            uplinks,
            grace,
        }
    }

    async fn peers(&self) -> Peers {
        let asked = Instant::now();
        let neighbors = timeout(STALL_LIMIT + Duration::from_millis(100), async {
            let (tx, mut rx) = mpsc::channel(64);
            self.speaker
                .send(Command::Request(Request::ShowNeighbors, tx))
                .await
                .ok()?;
            let mut out = Vec::new();
            while let Some(r) = rx.recv().await {
                if let Reply::Neighbor(n) = r {
                    out.push(n);
                }
            }
            Some(out)
        })
        .await
        .ok()
        .flatten();
        Peers { neighbors, asked }
    }

    async fn health_of(&self, peers: &Peers) -> Health {
        // The kernel's word, not what the daemon did at start: someone may have run
        // `ip link set dev eth0 xdp off`, or the interface may have been recreated.
        let attached = match xdp_attachments().await {
            Ok(a) => a,
            Err(e) => {
                warn!("health: reading the interfaces' XDP attachments: {e}");
                Vec::new()
            }
        };
        let uplinks = self
            .uplinks
            .iter()
            .map(|(name, want)| UplinkStatus {
                name: name.clone(),
                want: *want,
                attached: attached
                    .iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, a)| match a {
                        XdpAttachment::Skb => AttachMode::Skb,
                        // Offloaded or several programs: not a mode we attach in; count
                        // it as native so that only generic-vs-native is reported.
                        XdpAttachment::Driver
                        | XdpAttachment::Hardware
                        | XdpAttachment::Multiple => AttachMode::Driver,
                    }),
            })
            .collect();
        let now = Instant::now();
        let (peers, last_progress) = match &peers.neighbors {
            Some(list) => (
                list.iter()
                    // An administratively disabled peer is down on purpose.
                    .filter(|n| n.state != "Disabled")
                    .map(|n| PeerStatus {
                        name: n.name.clone(),
                        established: n.state == "Established",
                        state: n.state.clone(),
                        dynamic: n.dynamic,
                        configured_at: now
                            .checked_sub(Duration::from_secs(n.configured_secs))
                            .unwrap_or(now),
                        startup_grace: self.grace,
                    })
                    .collect(),
                now,
            ),
            // No answer within the limit: stalled since it was asked.
            None => (Vec::new(), peers.asked),
        };
        health::evaluate(&HealthInput {
            // The daemon runs only with a loaded configuration (a reload that fails
            // keeps the one in force).
            config: ConfigStatus::Loaded,
            uplinks,
            peers,
            last_progress,
            stall_limit: STALL_LIMIT,
            now,
        })
    }

    /// The verdict now, for `bgp-ctl health`.
    pub async fn health(&self) -> HealthView {
        let peers = self.peers().await;
        HealthView::from(&self.health_of(&peers).await)
    }

    async fn stats(&self) -> Option<StatsView> {
        let (tx, mut rx) = mpsc::channel(4);
        self.fib.send(FibQuery::Stats(tx)).await.ok()?;
        match timeout(STALL_LIMIT, rx.recv()).await {
            Ok(Some(Reply::Stats(s))) => Some(s),
            _ => None,
        }
    }

    /// Serves `/healthz`, `/readyz` and `/metrics` on `listen`, from a snapshot taken
    /// every [`REFRESH`]. A snapshot older than [`STALL_LIMIT`] means the daemon's
    /// tasks no longer run: `/healthz` then says so.
    pub async fn serve_http(self, listen: SocketAddr) -> anyhow::Result<()> {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("HTTP endpoints on {listen} ([http] listen)"))?;
        info!("metrics and health on http://{listen}/metrics, /healthz, /readyz");
        let first = self.snapshot().await;
        let shared = Arc::new(Mutex::new(first));
        let writer = shared.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(REFRESH).await;
                let s = self.snapshot().await;
                *writer.lock().unwrap_or_else(|p| p.into_inner()) = s;
            }
        });
        tokio::spawn(async move {
            let served = http::serve(listener, move |path| {
                let s = shared.lock().unwrap_or_else(|p| p.into_inner()).clone();
                answer(path, &s, Instant::now())
            })
            .await;
            if let Err(e) = served {
                warn!("HTTP endpoints stopped: {e}");
            }
        });
        Ok(())
    }

    async fn snapshot(&self) -> Snapshot {
        let peers = self.peers().await;
        let health = self.health_of(&peers).await;
        let stats = self.stats().await;
        let metrics = metrics::render(
            peers.neighbors.as_deref().unwrap_or_default(),
            stats.as_ref(),
            &health,
        );
        Snapshot {
            at: Instant::now(),
            health,
            metrics,
        }
    }
}

/// One snapshot for the HTTP endpoints.
#[derive(Clone)]
struct Snapshot {
    at: Instant,
    health: Health,
    metrics: String,
}

fn answer(path: &str, s: &Snapshot, now: Instant) -> Option<Response> {
    let age = now.saturating_duration_since(s.at);
    if age > STALL_LIMIT {
        let stalled = health::Condition::EventLoopStalled {
            stalled_for: age,
            limit: STALL_LIMIT,
        };
        return match path {
            "/healthz" | "/readyz" => Some(Response::text(503, format!("not live: {stalled}\n"))),
            "/metrics" => Some(Response::text(503, format!("# {stalled}\n"))),
            _ => None,
        };
    }
    http::probe_response(path, &s.health).or_else(|| {
        (path == "/metrics").then(|| Response {
            status: 200,
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: s.metrics.clone(),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(ready: bool) -> Snapshot {
        Snapshot {
            at: Instant::now(),
            health: Health {
                live: true,
                ready,
                failing: Vec::new(),
                peers_required: 0,
                peers_established: 0,
                peers_starting: 0,
                uplinks: 1,
            },
            metrics: "bgp_ctl_ready 1\n".into(),
        }
    }

    #[test]
    fn a_fresh_snapshot_answers_each_endpoint() {
        let s = snapshot(true);
        assert_eq!(answer("/readyz", &s, s.at).unwrap().status, 200);
        assert_eq!(answer("/healthz", &s, s.at).unwrap().status, 200);
        let m = answer("/metrics", &s, s.at).unwrap();
        assert_eq!((m.status, m.body.as_str()), (200, "bgp_ctl_ready 1\n"));
        assert!(answer("/other", &s, s.at).is_none());
    }

    #[test]
    fn a_stale_snapshot_means_not_live() {
        let s = snapshot(true);
        let later = s.at + STALL_LIMIT + Duration::from_secs(1);
        for path in ["/healthz", "/readyz", "/metrics"] {
            let r = answer(path, &s, later).unwrap();
            assert_eq!(r.status, 503, "{path}");
            assert!(r.body.contains("event-loop-stalled"), "{path}: {}", r.body);
        }
    }
}
