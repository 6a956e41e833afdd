//! One BFD session in Asynchronous mode (RFC 5880 section 6.8), as a pure state machine:
//! [`Event`]s in, [`Action`]s out. It owns no socket and reads no clock: the caller
//! sends what [`Action::Send`] says, runs the two timers [`Action::ArmTxTimer`] and
//! [`Action::ArmDetectTimer`] describe, and feeds their expiry back as
//! [`Event::TxTimer`] and [`Event::DetectTimer`]. Randomness (the transmit jitter of
//! section 6.8.7) comes from a generator seeded by the caller, so runs are reproducible.
//!
//! Implemented: the state machine of section 6.2 and the reception rules of 6.8.6, the
//! timer negotiation of 6.8.2-6.8.4 (slow 1 s transmission while not Up, the Poll
//! Sequence of 6.5 for every change of the advertised intervals, with the lag rules of
//! 6.8.3), jitter of 6.8.7, administrative down (6.8.16), and ceasing periodic
//! transmission when the peer asks for Demand mode (6.8.7).
//!
//! Not implemented, by choice: Demand mode on our side (we never set D), the Echo
//! function (we advertise Required Min Echo RX 0), and authentication (section 6.7: we
//! never set A, and discard packets that carry it, as 6.8.6 prescribes for a session
//! without authentication). Single-hop sessions rely on GTSM (RFC 5881 section 5)
//! instead, which the transport enforces.

use std::time::Duration;

use rand::{RngExt, SeedableRng, rngs::SmallRng};

use super::packet::{ControlPacket, Diagnostic, State};

/// Desired Min TX Interval while the session is not Up (section 6.8.3: at least 1 s).
pub const SLOW_TX_US: u32 = 1_000_000;

/// Timers of a session, as configured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// bfd.DesiredMinTxInterval once the session is Up.
    pub desired_min_tx: Duration,
    /// bfd.RequiredMinRxInterval: the fastest rate at which we accept packets.
    pub required_min_rx: Duration,
    /// bfd.DetectMult: the peer declares us Down after this many intervals of silence.
    pub multiplier: u8,
}

impl SessionConfig {
    /// The same interval both ways: `interval` x `multiplier` is the detection time.
    pub fn symmetric(interval: Duration, multiplier: u8) -> Self {
        Self {
            desired_min_tx: interval,
            required_min_rx: interval,
            multiplier,
        }
    }

    /// Checks the values can be carried on the wire and make a working session.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.multiplier == 0 {
            return Err(ConfigError::ZeroMultiplier);
        }
        for (name, value) in [
            ("desired_min_tx", self.desired_min_tx),
            ("required_min_rx", self.required_min_rx),
        ] {
            if value < Duration::from_millis(1) || micros(value).is_none() {
                return Err(ConfigError::Interval { name, value });
            }
        }
        Ok(())
    }
}

/// A [`SessionConfig`] that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The detection multiplier is zero.
    #[error("BFD multiplier must be at least 1")]
    ZeroMultiplier,
    /// An interval below 1 ms or beyond the 32-bit microsecond field.
    #[error("BFD {name} of {value:?} is outside 1 ms ..= 4294 s")]
    Interval {
        /// Which interval.
        name: &'static str,
        /// Its value.
        value: Duration,
    },
}

fn micros(d: Duration) -> Option<u32> {
    u32::try_from(d.as_micros()).ok()
}

/// What happens to a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Begin: send the first packet and start periodic transmission.
    Start,
    /// A Control packet for this session passed decoding, demultiplexing and GTSM.
    Received(ControlPacket),
    /// The transmit timer armed by the last [`Action::ArmTxTimer`] expired.
    TxTimer,
    /// The detection timer armed by the last [`Action::ArmDetectTimer`] expired.
    DetectTimer,
    /// Take the session administratively down (section 6.8.16).
    AdminDown,
    /// Leave administrative down.
    AdminUp,
    /// New timers (section 6.8.3; a multiplier change needs no Poll, 6.8.12). The caller
    /// validates them first.
    Configure(SessionConfig),
}

/// What the caller must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this packet to the peer now.
    Send(ControlPacket),
    /// (Re)arm the transmit timer to expire after this long, replacing any armed one.
    ArmTxTimer(Duration),
    /// (Re)arm the detection timer to expire after this long, replacing any armed one.
    ArmDetectTimer(Duration),
    /// Disarm the detection timer.
    CancelDetectTimer,
    /// The session changed state; `diag` is the local diagnostic now advertised.
    StateChange {
        /// Previous state.
        from: State,
        /// New state.
        to: State,
        /// bfd.LocalDiag after the change.
        diag: Diagnostic,
    },
    /// The received packet was discarded (section 6.8.6), for counters and logs.
    Discarded(&'static str),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Poll {
    Idle,
    Running,
    /// Parameters changed again while a Poll was running: another follows it.
    RunningThenAgain,
}

/// A snapshot of a session's state variables (section 6.8.1), for show commands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStatus {
    /// bfd.SessionState.
    pub state: State,
    /// bfd.RemoteSessionState.
    pub remote_state: State,
    /// bfd.LocalDiag.
    pub local_diag: Diagnostic,
    /// Diag of the last packet received.
    pub remote_diag: Diagnostic,
    /// bfd.LocalDiscr.
    pub local_discriminator: u32,
    /// bfd.RemoteDiscr (0 until heard, and after a Detection Time of silence).
    pub remote_discriminator: u32,
    /// bfd.DesiredMinTxInterval as advertised (1 s while not Up).
    pub desired_min_tx: Duration,
    /// bfd.RequiredMinRxInterval as advertised.
    pub required_min_rx: Duration,
    /// bfd.RemoteMinRxInterval.
    pub remote_min_rx: Duration,
    /// Desired Min TX Interval last received.
    pub remote_desired_min_tx: Duration,
    /// Detect Mult last received (0 before anything was).
    pub remote_multiplier: u8,
    /// Interval between our periodic packets, before jitter.
    pub transmit_interval: Duration,
    /// How long without a packet until Down, once something was received.
    pub detection_time: Option<Duration>,
    /// A Poll Sequence is in progress.
    pub polling: bool,
}

/// One BFD session; see the module documentation.
#[derive(Debug)]
pub struct Session {
    local_discriminator: u32,
    config: SessionConfig,
    state: State,
    remote_state: State,
    remote_discriminator: u32,
    local_diag: Diagnostic,
    remote_diag: Diagnostic,
    /// bfd.DesiredMinTxInterval as advertised, microseconds.
    desired_min_tx_us: u32,
    /// bfd.RequiredMinRxInterval as advertised, microseconds.
    required_min_rx_us: u32,
    /// The Desired Min TX our transmit interval is computed from: it lags an increase
    /// made while Up until the Poll Sequence ends (6.8.3).
    tx_basis_us: u32,
    /// The Required Min RX our Detection Time is computed from: it lags a reduction made
    /// while Up until the Poll Sequence ends (6.8.3).
    rx_basis_us: u32,
    /// bfd.RemoteMinRxInterval (1 until heard, section 6.8.1).
    remote_min_rx_us: u32,
    remote_desired_min_tx_us: u32,
    remote_multiplier: u8,
    /// bfd.RemoteDemandMode.
    remote_demand: bool,
    poll: Poll,
    started: bool,
    /// The transmit interval the transmit timer was last armed with, before jitter.
    tx_armed_for_us: Option<u32>,
    rng: SmallRng,
}

impl Session {
    /// A session in state Down with discriminator `local_discriminator` (non-zero, unique
    /// on this system) and a valid `config`; jitter is drawn from a generator seeded with
    /// `seed`. Nothing is sent until [`Event::Start`].
    pub fn new(local_discriminator: u32, config: SessionConfig, seed: u64) -> Self {
        let tx = micros(config.desired_min_tx).unwrap_or(u32::MAX);
        let rx = micros(config.required_min_rx).unwrap_or(u32::MAX);
        let desired = tx.max(SLOW_TX_US);
        Self {
            local_discriminator,
            config,
            state: State::Down,
            remote_state: State::Down,
            remote_discriminator: 0,
            local_diag: Diagnostic::NoDiagnostic,
            remote_diag: Diagnostic::NoDiagnostic,
            desired_min_tx_us: desired,
            required_min_rx_us: rx,
            tx_basis_us: desired,
            rx_basis_us: rx,
            remote_min_rx_us: 1,
            remote_desired_min_tx_us: 0,
            remote_multiplier: 0,
            remote_demand: false,
            poll: Poll::Idle,
            started: false,
            tx_armed_for_us: None,
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    /// bfd.SessionState.
    pub fn state(&self) -> State {
        self.state
    }

    /// bfd.LocalDiscr.
    pub fn local_discriminator(&self) -> u32 {
        self.local_discriminator
    }

    /// The configured timers.
    pub fn config(&self) -> SessionConfig {
        self.config
    }

    /// The state variables, for show commands and tests.
    pub fn status(&self) -> SessionStatus {
        let us = |v: u32| Duration::from_micros(u64::from(v));
        SessionStatus {
            state: self.state,
            remote_state: self.remote_state,
            local_diag: self.local_diag,
            remote_diag: self.remote_diag,
            local_discriminator: self.local_discriminator,
            remote_discriminator: self.remote_discriminator,
            desired_min_tx: us(self.desired_min_tx_us),
            required_min_rx: us(self.required_min_rx_us),
            remote_min_rx: us(self.remote_min_rx_us),
            remote_desired_min_tx: us(self.remote_desired_min_tx_us),
            remote_multiplier: self.remote_multiplier,
            transmit_interval: us(self.tx_interval_us()),
            detection_time: self.detection_time(),
            polling: self.poll != Poll::Idle,
        }
    }

    /// Applies `event`; returns what to do, in order.
    pub fn handle(&mut self, event: Event) -> Vec<Action> {
        let mut out = Vec::new();
        match event {
            Event::Start => {
                if !self.started {
                    self.started = true;
                    self.send_now(&mut out);
                }
            }
            Event::Received(packet) => self.receive(packet, &mut out),
            Event::TxTimer => self.transmit_periodic(&mut out),
            Event::DetectTimer => self.detection_expired(&mut out),
            Event::AdminDown => {
                if self.state != State::AdminDown {
                    self.change_state(State::AdminDown, Diagnostic::AdministrativelyDown, &mut out);
                    out.push(Action::CancelDetectTimer);
                }
            }
            Event::AdminUp => {
                if self.state == State::AdminDown {
                    // 6.8.16: back to Down; the diagnostic stays until the next change.
                    self.change_state(State::Down, self.local_diag, &mut out);
                }
            }
            Event::Configure(config) => {
                self.config = config;
                self.apply_timers();
            }
        }
        self.rearm_tx_if_changed(&mut out);
        out
    }

    /// Section 6.8.6, after the checks [`ControlPacket::decode`] made and demultiplexing.
    fn receive(&mut self, p: ControlPacket, out: &mut Vec<Action>) {
        if p.auth.is_some() {
            out.push(Action::Discarded("authentication present, none configured"));
            return;
        }
        self.remote_discriminator = p.my_discriminator;
        self.remote_state = p.state;
        self.remote_diag = p.diag;
        self.remote_demand = p.demand;
        self.remote_min_rx_us = p.required_min_rx_us;
        self.remote_desired_min_tx_us = p.desired_min_tx_us;
        self.remote_multiplier = p.detect_mult;
        if p.final_ && self.poll != Poll::Idle {
            self.poll_terminated();
        }
        if self.state == State::AdminDown {
            out.push(Action::Discarded("session is AdminDown"));
            return;
        }
        let first_action = out.len();
        if p.state == State::AdminDown {
            if self.state != State::Down {
                self.change_state(State::Down, Diagnostic::NeighborSignaledSessionDown, out);
            }
        } else {
            match (self.state, p.state) {
                (State::Down, State::Down) => self.change_state(State::Init, self.local_diag, out),
                (State::Down, State::Init) | (State::Init, State::Init | State::Up) => {
                    self.change_state(State::Up, Diagnostic::NoDiagnostic, out)
                }
                (State::Up, State::Down) => {
                    self.change_state(State::Down, Diagnostic::NeighborSignaledSessionDown, out)
                }
                _ => {}
            }
        }
        if p.poll {
            // Answer at once, whatever the transmit timer (6.8.6): the packet a state
            // change just sent becomes the Final, else a Final goes out on its own.
            let sent = out
                .iter_mut()
                .skip(first_action)
                .rev()
                .find_map(|a| match a {
                    Action::Send(sent) => Some(sent),
                    _ => None,
                });
            match sent {
                Some(sent) => {
                    sent.final_ = true;
                    sent.poll = false;
                }
                None => out.push(Action::Send(self.packet(true))),
            }
        }
        if let Some(detect) = self.detection_time() {
            out.push(Action::ArmDetectTimer(detect));
        }
    }

    /// Section 6.8.4: a Detection Time without a packet.
    fn detection_expired(&mut self, out: &mut Vec<Action>) {
        // 6.8.1: bfd.RemoteDiscr is zeroed after a Detection Time of silence, whatever
        // the state, so a restarted peer is found again by address.
        self.remote_discriminator = 0;
        if matches!(self.state, State::Init | State::Up) {
            self.change_state(State::Down, Diagnostic::ControlDetectionTimeExpired, out);
        }
    }

    /// Section 6.8.7: a periodic packet, unless the peer asked for none.
    fn transmit_periodic(&mut self, out: &mut Vec<Action>) {
        if !self.started {
            return;
        }
        let demand =
            self.remote_demand && self.state == State::Up && self.remote_state == State::Up;
        if self.remote_min_rx_us != 0 && !demand {
            out.push(Action::Send(self.packet(false)));
        }
        self.arm_tx(out);
    }

    fn change_state(&mut self, to: State, diag: Diagnostic, out: &mut Vec<Action>) {
        let from = self.state;
        self.state = to;
        self.local_diag = diag;
        if from == to {
            return;
        }
        if from == State::Up {
            // The session left Up: any Poll was about the fast timers it no longer uses.
            self.poll = Poll::Idle;
            self.tx_basis_us = self.desired_min_tx_us;
            self.rx_basis_us = self.required_min_rx_us;
        }
        self.apply_timers();
        out.push(Action::StateChange { from, to, diag });
        if self.started {
            // Tell the peer at once rather than up to a (slow) interval later.
            self.send_now(out);
        }
    }

    /// Sends a packet now and restarts the periodic interval from here.
    fn send_now(&mut self, out: &mut Vec<Action>) {
        if self.remote_min_rx_us != 0 {
            out.push(Action::Send(self.packet(false)));
        }
        self.arm_tx(out);
    }

    /// Advertised intervals for the current state and config (6.8.3), with a Poll
    /// Sequence when they change.
    fn apply_timers(&mut self) {
        let tx = micros(self.config.desired_min_tx).unwrap_or(u32::MAX);
        let desired = if self.state == State::Up {
            tx
        } else {
            tx.max(SLOW_TX_US)
        };
        let required = micros(self.config.required_min_rx).unwrap_or(u32::MAX);
        if desired == self.desired_min_tx_us && required == self.required_min_rx_us {
            return;
        }
        let up = self.state == State::Up;
        // An increase of our rate of sending, or a reduction of the rate we expect, only
        // takes effect once the peer has acknowledged it (the Poll's Final).
        if !(up && desired > self.tx_basis_us) {
            self.tx_basis_us = desired;
        }
        if !(up && required < self.rx_basis_us) {
            self.rx_basis_us = required;
        }
        self.desired_min_tx_us = desired;
        self.required_min_rx_us = required;
        self.poll = match self.poll {
            Poll::Idle => Poll::Running,
            Poll::Running | Poll::RunningThenAgain => Poll::RunningThenAgain,
        };
    }

    fn poll_terminated(&mut self) {
        match self.poll {
            Poll::RunningThenAgain => self.poll = Poll::Running,
            Poll::Running | Poll::Idle => {
                self.poll = Poll::Idle;
                self.tx_basis_us = self.desired_min_tx_us;
                self.rx_basis_us = self.required_min_rx_us;
            }
        }
    }

    /// Section 6.8.2 and 6.8.7: the larger of our Desired Min TX and the peer's Required
    /// Min RX.
    fn tx_interval_us(&self) -> u32 {
        self.tx_basis_us.max(self.remote_min_rx_us)
    }

    /// Section 6.8.4: the peer's Detect Mult times the agreed interval of the peer (the
    /// larger of our Required Min RX and its Desired Min TX).
    fn detection_time(&self) -> Option<Duration> {
        if self.remote_multiplier == 0 {
            return None;
        }
        let interval = self.rx_basis_us.max(self.remote_desired_min_tx_us);
        Some(Duration::from_micros(
            u64::from(self.remote_multiplier) * u64::from(interval),
        ))
    }

    /// Arms the transmit timer with the current interval, jittered (6.8.7): 75-100% of
    /// it, 75-90% when our Detect Mult is 1.
    fn arm_tx(&mut self, out: &mut Vec<Action>) {
        let interval = self.tx_interval_us();
        let max_percent = if self.config.multiplier == 1 { 90 } else { 100 };
        let lo = u64::from(interval) * 75 / 100;
        let hi = u64::from(interval) * max_percent / 100;
        let wait = if hi > lo {
            self.rng.random_range(lo..=hi)
        } else {
            lo
        };
        self.tx_armed_for_us = Some(interval);
        out.push(Action::ArmTxTimer(Duration::from_micros(wait)));
    }

    /// A changed transmit interval takes effect now, not after the old one runs out.
    fn rearm_tx_if_changed(&mut self, out: &mut Vec<Action>) {
        if self.started && self.tx_armed_for_us != Some(self.tx_interval_us()) {
            self.arm_tx(out);
        }
    }

    /// Our Control packet as of now (6.8.7); `final_` answers a Poll.
    fn packet(&self, final_: bool) -> ControlPacket {
        ControlPacket {
            diag: self.local_diag,
            state: self.state,
            poll: !final_ && self.poll != Poll::Idle,
            final_,
            control_plane_independent: false,
            demand: false,
            detect_mult: self.config.multiplier,
            my_discriminator: self.local_discriminator,
            your_discriminator: self.remote_discriminator,
            desired_min_tx_us: self.desired_min_tx_us,
            required_min_rx_us: self.required_min_rx_us,
            required_min_echo_rx_us: 0,
            auth: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: Duration = Duration::from_millis(1);
    const PEER_DISCR: u32 = 0xbeef;

    fn fast() -> SessionConfig {
        SessionConfig::symmetric(100 * MS, 3)
    }

    fn started(config: SessionConfig) -> Session {
        let mut s = Session::new(0x1234, config, 7);
        s.handle(Event::Start);
        s
    }

    /// A packet from the peer: `state`, knowing our discriminator unless Down.
    fn from_peer(state: State) -> ControlPacket {
        ControlPacket {
            diag: Diagnostic::NoDiagnostic,
            state,
            poll: false,
            final_: false,
            control_plane_independent: false,
            demand: false,
            detect_mult: 3,
            my_discriminator: PEER_DISCR,
            your_discriminator: if state == State::Down { 0 } else { 0x1234 },
            desired_min_tx_us: 100_000,
            required_min_rx_us: 100_000,
            required_min_echo_rx_us: 0,
            auth: None,
        }
    }

    fn sent(actions: &[Action]) -> Vec<&ControlPacket> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(p) => Some(p),
                _ => None,
            })
            .collect()
    }

    fn changes(actions: &[Action]) -> Vec<(State, State, Diagnostic)> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::StateChange { from, to, diag } => Some((*from, *to, *diag)),
                _ => None,
            })
            .collect()
    }

    fn tx_timer(actions: &[Action]) -> Option<Duration> {
        actions.iter().rev().find_map(|a| match a {
            Action::ArmTxTimer(d) => Some(*d),
            _ => None,
        })
    }

    fn detect_timer(actions: &[Action]) -> Option<Duration> {
        actions.iter().find_map(|a| match a {
            Action::ArmDetectTimer(d) => Some(*d),
            _ => None,
        })
    }

    /// Brings a session Up through Down -> Init -> Up and completes its Poll.
    fn up() -> Session {
        let mut s = started(fast());
        s.handle(Event::Received(from_peer(State::Down)));
        s.handle(Event::Received(from_peer(State::Up)));
        let mut fin = from_peer(State::Up);
        fin.final_ = true;
        s.handle(Event::Received(fin));
        assert_eq!(s.state(), State::Up);
        assert!(!s.status().polling);
        s
    }

    #[test]
    fn start_sends_down_at_the_slow_rate() {
        let mut s = Session::new(0x1234, fast(), 1);
        let a = s.handle(Event::Start);
        let p = sent(&a);
        assert_eq!(p.len(), 1);
        let p = p[0];
        assert_eq!((p.state, p.diag), (State::Down, Diagnostic::NoDiagnostic));
        assert_eq!((p.my_discriminator, p.your_discriminator), (0x1234, 0));
        assert_eq!(p.desired_min_tx_us, 1_000_000, "6.8.3: >= 1 s while not Up");
        assert_eq!(p.required_min_rx_us, 100_000);
        assert_eq!(p.required_min_echo_rx_us, 0);
        assert_eq!(p.detect_mult, 3);
        assert!(!p.poll && !p.final_ && !p.demand && p.auth.is_none());
        let t = tx_timer(&a).unwrap();
        assert!((750 * MS..=1000 * MS).contains(&t), "{t:?}");
        // A second Start does nothing.
        assert!(s.handle(Event::Start).is_empty());
    }

    #[test]
    fn three_way_handshake_down_init_up() {
        let mut s = started(fast());
        let a = s.handle(Event::Received(from_peer(State::Down)));
        assert_eq!(
            changes(&a),
            vec![(State::Down, State::Init, Diagnostic::NoDiagnostic)]
        );
        // The peer hears of it at once, with its discriminator echoed.
        let p = sent(&a);
        assert_eq!(p.len(), 1);
        assert_eq!(
            (p[0].state, p[0].your_discriminator),
            (State::Init, PEER_DISCR)
        );
        assert_eq!(
            detect_timer(&a),
            Some(300 * MS),
            "3 x max(our 100 ms, its 100 ms)"
        );
        // Init + peer Down: stays Init.
        let a = s.handle(Event::Received(from_peer(State::Down)));
        assert!(changes(&a).is_empty());
        assert_eq!(s.state(), State::Init);
        let a = s.handle(Event::Received(from_peer(State::Up)));
        assert_eq!(
            changes(&a),
            vec![(State::Init, State::Up, Diagnostic::NoDiagnostic)]
        );
        assert_eq!(s.state(), State::Up);

        // Down + peer Init goes straight Up.
        let mut s = started(fast());
        let a = s.handle(Event::Received(from_peer(State::Init)));
        assert_eq!(
            changes(&a),
            vec![(State::Down, State::Up, Diagnostic::NoDiagnostic)]
        );
        // Down + peer Up stays Down (the peer still has to notice).
        let mut s = started(fast());
        let a = s.handle(Event::Received(from_peer(State::Up)));
        assert!(changes(&a).is_empty());
        assert_eq!(s.state(), State::Down);
    }

    #[test]
    fn detection_timeout_takes_the_session_down_with_diag_1() {
        let mut s = up();
        let a = s.handle(Event::Received(from_peer(State::Up)));
        assert_eq!(detect_timer(&a), Some(300 * MS), "3 x max(100 ms, 100 ms)");
        let a = s.handle(Event::DetectTimer);
        assert_eq!(
            changes(&a),
            vec![(
                State::Up,
                State::Down,
                Diagnostic::ControlDetectionTimeExpired
            )]
        );
        let p = sent(&a);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].state, State::Down);
        assert_eq!(p[0].diag, Diagnostic::ControlDetectionTimeExpired);
        assert_eq!(p[0].your_discriminator, 0, "6.8.1: RemoteDiscr zeroed");
        assert_eq!(p[0].desired_min_tx_us, 1_000_000, "back to slow");
        let status = s.status();
        assert_eq!(status.local_diag, Diagnostic::ControlDetectionTimeExpired);
        assert!(status.transmit_interval >= Duration::from_secs(1));
        // Expiry while Down changes nothing but the remote discriminator.
        let a = s.handle(Event::DetectTimer);
        assert!(changes(&a).is_empty());
        // Init times out too.
        let mut s = started(fast());
        s.handle(Event::Received(from_peer(State::Down)));
        let a = s.handle(Event::DetectTimer);
        assert_eq!(
            changes(&a),
            vec![(
                State::Init,
                State::Down,
                Diagnostic::ControlDetectionTimeExpired
            )]
        );
    }

    #[test]
    fn neighbor_signaled_down_gives_diag_3() {
        let mut s = up();
        let a = s.handle(Event::Received(from_peer(State::Down)));
        assert_eq!(
            changes(&a),
            vec![(
                State::Up,
                State::Down,
                Diagnostic::NeighborSignaledSessionDown
            )]
        );
        assert_eq!(sent(&a)[0].diag, Diagnostic::NeighborSignaledSessionDown);

        // Peer AdminDown: Up or Init go Down with diag 3; Down stays Down.
        for mut s in [up(), {
            let mut s = started(fast());
            s.handle(Event::Received(from_peer(State::Down)));
            s
        }] {
            let from = s.state();
            let a = s.handle(Event::Received(from_peer(State::AdminDown)));
            assert_eq!(
                changes(&a),
                vec![(from, State::Down, Diagnostic::NeighborSignaledSessionDown)]
            );
            assert_eq!(s.status().remote_state, State::AdminDown);
        }
        let mut s = started(fast());
        let a = s.handle(Event::Received(from_peer(State::AdminDown)));
        assert!(changes(&a).is_empty());
        // Neither Down nor AdminDown from the peer ever brings us Up afterwards alone.
        assert_eq!(s.state(), State::Down);
    }

    #[test]
    fn admin_down_sends_diag_7_and_ignores_the_peer() {
        let mut s = up();
        let a = s.handle(Event::AdminDown);
        assert_eq!(
            changes(&a),
            vec![(
                State::Up,
                State::AdminDown,
                Diagnostic::AdministrativelyDown
            )]
        );
        assert!(a.contains(&Action::CancelDetectTimer));
        let p = sent(&a);
        assert_eq!(
            (p[0].state, p[0].diag),
            (State::AdminDown, Diagnostic::AdministrativelyDown)
        );
        // Packets are discarded (6.8.6) and do not arm the detection timer.
        for st in [State::Down, State::Init, State::Up] {
            let a = s.handle(Event::Received(from_peer(st)));
            assert!(changes(&a).is_empty());
            assert!(detect_timer(&a).is_none());
            assert!(matches!(a[0], Action::Discarded(_)), "{a:?}");
        }
        // Periodic packets keep saying AdminDown.
        let a = s.handle(Event::TxTimer);
        assert_eq!(sent(&a)[0].state, State::AdminDown);
        assert!(s.handle(Event::AdminDown).is_empty());
        let a = s.handle(Event::AdminUp);
        assert_eq!(
            changes(&a),
            vec![(
                State::AdminDown,
                State::Down,
                Diagnostic::AdministrativelyDown
            )]
        );
        let a = s.handle(Event::Received(from_peer(State::Down)));
        assert_eq!(changes(&a)[0].1, State::Init);
    }

    #[test]
    fn slow_until_up_then_the_configured_rate_with_a_poll() {
        let mut s = started(fast());
        // The peer wants 100 ms, we advertise 1 s while not Up: we send every ~1 s.
        let a = s.handle(Event::Received(from_peer(State::Down)));
        assert_eq!(s.status().transmit_interval, Duration::from_secs(1));
        for _ in 0..20 {
            let a = s.handle(Event::TxTimer);
            let p = sent(&a);
            assert_eq!(p[0].desired_min_tx_us, 1_000_000);
            assert!(!p[0].poll);
            let t = tx_timer(&a).unwrap();
            assert!((750 * MS..=1000 * MS).contains(&t), "{t:?}");
        }
        drop(a);
        let a = s.handle(Event::Received(from_peer(State::Up)));
        assert_eq!(s.state(), State::Up);
        // Up: 100 ms advertised at once (a decrease applies immediately), in a Poll.
        let p = sent(&a);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].desired_min_tx_us, 100_000);
        assert!(p[0].poll && !p[0].final_);
        let t = tx_timer(&a).unwrap();
        assert!(
            (75 * MS..=100 * MS).contains(&t),
            "re-armed at the new rate: {t:?}"
        );
        assert!(s.status().polling);
        // Periodic packets carry P until the Final.
        let a = s.handle(Event::TxTimer);
        assert!(sent(&a)[0].poll);
        let mut fin = from_peer(State::Up);
        fin.final_ = true;
        s.handle(Event::Received(fin));
        assert!(!s.status().polling);
        let a = s.handle(Event::TxTimer);
        let p = sent(&a);
        assert!(!p[0].poll && !p[0].final_);
        assert_eq!(p[0].desired_min_tx_us, 100_000);
        assert_eq!(s.status().transmit_interval, 100 * MS);
        // The peer's Required Min RX bounds our rate: 250 ms if it asks for that.
        let mut slow_rx = from_peer(State::Up);
        slow_rx.required_min_rx_us = 250_000;
        let a = s.handle(Event::Received(slow_rx));
        let t = tx_timer(&a).expect("re-armed when the interval changes");
        assert!((187_500 * MS / 1000..=250 * MS).contains(&t), "{t:?}");
    }

    #[test]
    fn poll_from_the_peer_is_answered_at_once_with_final() {
        let mut s = up();
        let mut poll = from_peer(State::Up);
        poll.poll = true;
        let a = s.handle(Event::Received(poll.clone()));
        let p = sent(&a);
        assert_eq!(p.len(), 1);
        assert!(p[0].final_ && !p[0].poll);
        assert!(
            tx_timer(&a).is_none(),
            "a Final does not disturb the periodic timer"
        );
        // A Poll that also changes our state gets one packet: the new state with F.
        let mut s = started(fast());
        let mut poll = from_peer(State::Down);
        poll.poll = true;
        let a = s.handle(Event::Received(poll));
        let p = sent(&a);
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].state, State::Init);
        assert!(p[0].final_ && !p[0].poll);
    }

    #[test]
    fn timer_changes_while_up_wait_for_the_final() {
        let mut s = up();
        let mut fin = from_peer(State::Up);
        fin.final_ = true;
        // Slower transmission: advertised at once, used only after the Final (6.8.3).
        let a = s.handle(Event::Configure(SessionConfig::symmetric(300 * MS, 3)));
        assert!(s.status().polling);
        assert_eq!(s.status().desired_min_tx, 300 * MS);
        assert_eq!(s.status().transmit_interval, 100 * MS);
        assert!(tx_timer(&a).is_none());
        let a = s.handle(Event::TxTimer);
        assert!(sent(&a)[0].poll);
        assert_eq!(sent(&a)[0].desired_min_tx_us, 300_000);
        // Its Required Min RX went up: that applies at once to our detection time.
        assert_eq!(s.status().detection_time, Some(900 * MS));
        let a = s.handle(Event::Received(fin.clone()));
        assert_eq!(s.status().transmit_interval, 300 * MS);
        assert!(tx_timer(&a).is_some(), "re-armed at the slower rate");
        assert!(!s.status().polling);

        // Faster reception: the old Required Min RX stays in the detection time until
        // the Final.
        s.handle(Event::Configure(SessionConfig::symmetric(50 * MS, 3)));
        assert_eq!(s.status().required_min_rx, 50 * MS);
        assert_eq!(s.status().detection_time, Some(900 * MS));
        // Faster transmission applies at once.
        assert_eq!(
            s.status().transmit_interval,
            100 * MS,
            "max(50, peer's 100)"
        );
        let mut fast_peer = fin.clone();
        fast_peer.desired_min_tx_us = 50_000;
        fast_peer.required_min_rx_us = 50_000;
        s.handle(Event::Received(fast_peer));
        assert_eq!(s.status().detection_time, Some(150 * MS));
        assert_eq!(s.status().transmit_interval, 50 * MS);

        // A multiplier change needs no Poll (6.8.12).
        let mut s = up();
        s.handle(Event::Configure(SessionConfig::symmetric(100 * MS, 5)));
        assert!(!s.status().polling);
        assert_eq!(sent(&s.handle(Event::TxTimer))[0].detect_mult, 5);
    }

    #[test]
    fn a_change_during_a_poll_runs_a_second_poll() {
        let mut s = up();
        let mut fin = from_peer(State::Up);
        fin.final_ = true;
        s.handle(Event::Configure(SessionConfig::symmetric(300 * MS, 3)));
        s.handle(Event::Configure(SessionConfig::symmetric(500 * MS, 3)));
        s.handle(Event::Received(fin.clone()));
        assert!(
            s.status().polling,
            "the second change still needs its Final"
        );
        assert_eq!(s.status().transmit_interval, 100 * MS, "held until then");
        s.handle(Event::Received(fin.clone()));
        assert!(!s.status().polling);
        assert_eq!(s.status().transmit_interval, 500 * MS);
        // A Final without a Poll of ours is ignored.
        s.handle(Event::Received(fin));
        assert!(!s.status().polling);
    }

    #[test]
    fn detection_time_is_remote_multiplier_times_agreed_interval() {
        let mut s = up();
        let mut p = from_peer(State::Up);
        p.detect_mult = 5;
        p.desired_min_tx_us = 200_000;
        let a = s.handle(Event::Received(p.clone()));
        assert_eq!(
            detect_timer(&a),
            Some(Duration::from_secs(1)),
            "5 x max(100, 200) ms"
        );
        p.desired_min_tx_us = 10_000;
        let a = s.handle(Event::Received(p));
        assert_eq!(detect_timer(&a), Some(500 * MS), "5 x max(100, 10) ms");
        assert_eq!(s.status().remote_multiplier, 5);
    }

    #[test]
    fn jitter_is_75_to_100_percent_and_75_to_90_with_multiplier_1() {
        for (mult, max) in [(3u8, 100u32), (1, 90)] {
            let mut s = Session::new(1, SessionConfig::symmetric(100 * MS, mult), 42);
            s.handle(Event::Start);
            let (mut lo, mut hi) = (Duration::MAX, Duration::ZERO);
            for _ in 0..2000 {
                let t = tx_timer(&s.handle(Event::TxTimer)).unwrap();
                lo = lo.min(t);
                hi = hi.max(t);
            }
            // Not Up: the interval is 1 s.
            assert!(lo >= 750 * MS, "mult {mult}: {lo:?}");
            assert!(hi <= max * 10 * MS, "mult {mult}: {hi:?}");
            // Spread over the range, not a constant.
            assert!(
                lo < 760 * MS && hi > (max * 10 - 10) * MS,
                "mult {mult}: {lo:?}..{hi:?}"
            );
        }
    }

    #[test]
    fn peer_in_demand_mode_or_with_zero_min_rx_gets_no_periodic_packets() {
        let mut s = up();
        let mut d = from_peer(State::Up);
        d.demand = true;
        s.handle(Event::Received(d));
        let a = s.handle(Event::TxTimer);
        assert!(sent(&a).is_empty());
        assert!(tx_timer(&a).is_some(), "the timer keeps running");

        let mut s = up();
        let mut z = from_peer(State::Up);
        z.required_min_rx_us = 0;
        s.handle(Event::Received(z));
        let a = s.handle(Event::TxTimer);
        assert!(sent(&a).is_empty());
        assert_eq!(tx_timer(&a).map(|t| t >= 75 * MS), Some(true));
    }

    #[test]
    fn authenticated_packets_are_discarded() {
        let mut s = started(fast());
        let mut p = from_peer(State::Down);
        p.auth = crate::bfd::packet::Authentication::new(1, bytes::Bytes::from_static(b"pw"));
        let a = s.handle(Event::Received(p));
        assert_eq!(
            a,
            vec![Action::Discarded("authentication present, none configured")]
        );
        assert_eq!(s.status().remote_discriminator, 0);
    }

    #[test]
    fn config_validation_names_the_field() {
        assert!(fast().validate().is_ok());
        assert_eq!(
            SessionConfig::symmetric(100 * MS, 0).validate(),
            Err(ConfigError::ZeroMultiplier)
        );
        let e = SessionConfig {
            desired_min_tx: Duration::from_micros(10),
            ..fast()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("desired_min_tx"), "{e}");
        let e = SessionConfig {
            required_min_rx: Duration::from_secs(5000),
            ..fast()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("required_min_rx"), "{e}");
    }

    /// Two sessions joined by a simulated link (1 ms latency), on a simulated clock.
    struct Sim {
        now: Duration,
        nodes: [Session; 2],
        tx_at: [Option<Duration>; 2],
        detect_at: [Option<Duration>; 2],
        in_flight: Vec<(Duration, usize, ControlPacket)>,
        link_up: bool,
        log: Vec<(Duration, usize, State, State, Diagnostic)>,
    }

    impl Sim {
        fn new(config: SessionConfig) -> Self {
            let mut sim = Sim {
                now: Duration::ZERO,
                nodes: [Session::new(0xa, config, 1), Session::new(0xb, config, 2)],
                tx_at: [None; 2],
                detect_at: [None; 2],
                in_flight: Vec::new(),
                link_up: true,
                log: Vec::new(),
            };
            for i in 0..2 {
                sim.apply(i, Event::Start);
            }
            sim
        }

        fn apply(&mut self, i: usize, event: Event) {
            for a in self.nodes[i].handle(event) {
                match a {
                    Action::Send(p) if self.link_up => {
                        self.in_flight.push((self.now + MS, 1 - i, p))
                    }
                    Action::Send(_) | Action::Discarded(_) => {}
                    Action::ArmTxTimer(d) => self.tx_at[i] = Some(self.now + d),
                    Action::ArmDetectTimer(d) => self.detect_at[i] = Some(self.now + d),
                    Action::CancelDetectTimer => self.detect_at[i] = None,
                    Action::StateChange { from, to, diag } => {
                        self.log.push((self.now, i, from, to, diag))
                    }
                }
            }
        }

        /// Runs events until `until` (simulated).
        fn run(&mut self, until: Duration) {
            loop {
                let mut next: Option<(Duration, u8, usize)> = None;
                let mut consider = |t: Option<Duration>, kind: u8, i: usize| {
                    if let Some(t) = t
                        && next.is_none_or(|n| t < n.0)
                    {
                        next = Some((t, kind, i));
                    }
                };
                for i in 0..2 {
                    consider(self.tx_at[i], 0, i);
                    consider(self.detect_at[i], 1, i);
                }
                for (k, f) in self.in_flight.iter().enumerate() {
                    consider(Some(f.0), 2, k);
                }
                let Some((t, kind, i)) = next else { return };
                if t > until {
                    self.now = until;
                    return;
                }
                self.now = t;
                match kind {
                    0 => {
                        self.tx_at[i] = None;
                        self.apply(i, Event::TxTimer);
                    }
                    1 => {
                        self.detect_at[i] = None;
                        self.apply(i, Event::DetectTimer);
                    }
                    _ => {
                        let (_, to, p) = self.in_flight.remove(i);
                        self.apply(to, Event::Received(p));
                    }
                }
            }
        }
    }

    #[test]
    fn simulated_pair_comes_up_speeds_up_and_detects_a_cut_in_time() {
        let mut sim = Sim::new(fast());
        sim.run(Duration::from_secs(3));
        for i in 0..2 {
            let st = sim.nodes[i].status();
            assert_eq!(st.state, State::Up, "node {i}: {:?}", sim.log);
            assert!(!st.polling, "node {i} finished its Poll");
            assert_eq!(st.transmit_interval, 100 * MS);
            assert_eq!(st.detection_time, Some(300 * MS));
        }
        // Both start at once, so each sees the other Down first: Down -> Init -> Up.
        let up_at = sim
            .log
            .iter()
            .filter(|l| l.3 == State::Up)
            .map(|l| l.0)
            .max()
            .unwrap();
        assert!(
            up_at < 10 * MS,
            "handshake takes round trips, not intervals: {up_at:?}"
        );
        // Fast packets for a while, no flap.
        sim.run(Duration::from_secs(13));
        assert_eq!(sim.log.len(), 4, "{:?}", sim.log);
        // Cut the link: each side goes Down within its detection time (300 ms) of the
        // last packet it received, which left at most one interval (100 ms) earlier.
        let cut = sim.now;
        sim.link_up = false;
        sim.in_flight.clear();
        sim.run(cut + Duration::from_secs(2));
        let downs: Vec<_> = sim.log.iter().filter(|l| l.0 >= cut).collect();
        assert_eq!(downs.len(), 2, "{downs:?}");
        for d in downs {
            assert_eq!(
                (d.2, d.3, d.4),
                (
                    State::Up,
                    State::Down,
                    Diagnostic::ControlDetectionTimeExpired
                )
            );
            assert!(d.0 - cut <= 300 * MS, "detected after {:?}", d.0 - cut);
            assert!(d.0 - cut >= 200 * MS, "detected after {:?}", d.0 - cut);
        }
        // Mend it: Up again, through the slow start.
        sim.link_up = true;
        let mended = sim.now;
        sim.run(mended + Duration::from_secs(3));
        assert!(
            sim.nodes.iter().all(|n| n.state() == State::Up),
            "{:?}",
            sim.log
        );
    }
}
