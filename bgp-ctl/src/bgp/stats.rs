//! Per-peer counters and status, shared between a session's tasks and its handle: message
//! counts by type and direction, state, uptime, flaps, the last error.

use std::{
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::SystemTime,
};

use bgp_wire::{MessageType, NotificationCode};

use super::{fsm::State, negotiation::Negotiated};

/// Messages of each type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MessageCounts {
    /// OPEN.
    pub open: u64,
    /// UPDATE.
    pub update: u64,
    /// NOTIFICATION.
    pub notification: u64,
    /// KEEPALIVE.
    pub keepalive: u64,
    /// ROUTE-REFRESH.
    pub route_refresh: u64,
}

impl MessageCounts {
    /// All messages.
    pub fn total(&self) -> u64 {
        self.open + self.update + self.notification + self.keepalive + self.route_refresh
    }
}

/// Who sent the NOTIFICATION of an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorDirection {
    /// We sent it.
    Sent,
    /// The peer sent it.
    Received,
}

/// The last NOTIFICATION sent or received, or the last connection failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastError {
    /// Code and subcode, if a NOTIFICATION was involved.
    pub code: Option<NotificationCode>,
    /// Who sent it.
    pub direction: ErrorDirection,
    /// What happened, readable.
    pub text: String,
    /// When.
    pub at: SystemTime,
}

/// A copy of a peer's counters and status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// FSM state.
    pub state: State,
    /// Administratively enabled.
    pub enabled: bool,
    /// Messages received.
    pub received: MessageCounts,
    /// Messages sent.
    pub sent: MessageCounts,
    /// Established since (uptime), if Established.
    pub established_since: Option<SystemTime>,
    /// Times the session left Established.
    pub flaps: u64,
    /// The last error.
    pub last_error: Option<LastError>,
    /// The current session's negotiated parameters, if Established.
    pub negotiated: Option<Arc<Negotiated>>,
    /// Connections refused because the SYN's TTL failed the GTSM check.
    pub gtsm_refused: u64,
}

#[derive(Debug, Default)]
struct Counts([AtomicU64; 5]);

impl Counts {
    fn add(&self, kind: MessageType, n: u64) {
        let i = usize::from(kind.code() - 1).min(4);
        if let Some(c) = self.0.get(i) {
            c.fetch_add(n, Ordering::Relaxed);
        }
    }

    fn get(&self) -> MessageCounts {
        let v = |i: usize| self.0[i].load(Ordering::Relaxed);
        MessageCounts {
            open: v(0),
            update: v(1),
            notification: v(2),
            keepalive: v(3),
            route_refresh: v(4),
        }
    }
}

#[derive(Debug)]
struct Status {
    state: State,
    enabled: bool,
    established_since: Option<SystemTime>,
    flaps: u64,
    last_error: Option<LastError>,
    negotiated: Option<Arc<Negotiated>>,
}

/// Counters of one peer; cheap to update from any task.
#[derive(Debug)]
pub struct PeerStats {
    received: Counts,
    sent: Counts,
    gtsm_refused: AtomicU64,
    status: Mutex<Status>,
}

impl Default for PeerStats {
    fn default() -> Self {
        PeerStats {
            received: Counts::default(),
            sent: Counts::default(),
            gtsm_refused: AtomicU64::new(0),
            status: Mutex::new(Status {
                state: State::Idle,
                enabled: false,
                established_since: None,
                flaps: 0,
                last_error: None,
                negotiated: None,
            }),
        }
    }
}

impl PeerStats {
    fn status(&self) -> std::sync::MutexGuard<'_, Status> {
        // The status is plain data: a panic elsewhere cannot leave it inconsistent.
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts `n` messages of a type received.
    pub fn received(&self, kind: MessageType, n: u64) {
        self.received.add(kind, n);
    }

    /// Counts `n` messages of a type sent.
    pub fn sent(&self, kind: MessageType, n: u64) {
        self.sent.add(kind, n);
    }

    /// Counts a connection refused by GTSM.
    pub fn gtsm_refused(&self) {
        self.gtsm_refused.fetch_add(1, Ordering::Relaxed);
    }

    /// Records the FSM state.
    pub fn set_state(&self, state: State, enabled: bool) {
        let mut s = self.status();
        s.state = state;
        s.enabled = enabled;
    }

    /// Records that the session is Established.
    pub fn established(&self, negotiated: Arc<Negotiated>) {
        let mut s = self.status();
        s.established_since = Some(SystemTime::now());
        s.negotiated = Some(negotiated);
    }

    /// Records that the session left Established (a flap) or failed before.
    pub fn down(&self, was_established: bool) {
        let mut s = self.status();
        if was_established {
            s.flaps += 1;
        }
        s.established_since = None;
        s.negotiated = None;
    }

    /// Records an error.
    pub fn error(&self, code: Option<NotificationCode>, direction: ErrorDirection, text: String) {
        self.status().last_error = Some(LastError {
            code,
            direction,
            text,
            at: SystemTime::now(),
        });
    }

    /// A copy of everything.
    pub fn snapshot(&self) -> StatsSnapshot {
        let s = self.status();
        StatsSnapshot {
            state: s.state,
            enabled: s.enabled,
            received: self.received.get(),
            sent: self.sent.get(),
            established_since: s.established_since,
            flaps: s.flaps,
            last_error: s.last_error.clone(),
            negotiated: s.negotiated.clone(),
            gtsm_refused: self.gtsm_refused.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_land_in_their_type_and_flaps_only_after_established() {
        let s = PeerStats::default();
        s.received(MessageType::Update, 3);
        s.received(MessageType::Keepalive, 1);
        s.sent(MessageType::RouteRefresh, 2);
        s.down(false);
        s.down(true);
        s.error(
            Some(NotificationCode::HoldTimerExpired),
            ErrorDirection::Sent,
            "hold timer expired".into(),
        );
        let snap = s.snapshot();
        assert_eq!(
            snap.received,
            MessageCounts {
                update: 3,
                keepalive: 1,
                ..MessageCounts::default()
            }
        );
        assert_eq!(snap.received.total(), 4);
        assert_eq!(snap.sent.route_refresh, 2);
        assert_eq!(snap.flaps, 1);
        assert_eq!(
            snap.last_error.map(|e| e.code),
            Some(Some(NotificationCode::HoldTimerExpired))
        );
    }
}
