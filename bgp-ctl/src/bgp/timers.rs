//! Session timers: their configuration, hold-time negotiation (RFC 4271 4.2 and 10) and the
//! idle-hold damping of a flapping peer. Pure values: the FSM asks for timers to start and
//! stop; the session layer owns the clocks.

use std::time::Duration;

use super::peer_config::ConfigError;

/// RFC 4271 8: the hold timer of OpenSent, "a large value", suggested 4 minutes.
pub const OPEN_HOLD_TIME: Duration = Duration::from_secs(240);

/// Timer settings of one peer.
///
/// Damping (like BIRD's `error wait time`/`error forget time`): after a session fails with
/// an error, the peer stays Idle for `idle_hold`, doubled on every consecutive failure up
/// to `idle_hold_max`; once a session has stayed Established for `stable_after`, the
/// count starts again. Admin resets and the peer's own administrative Cease do not count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimerConfig {
    /// Hold time we propose, seconds (0: no keepalives, no hold timer).
    pub hold_time: u16,
    /// Keepalive interval, seconds; the negotiated one is at most a third of the
    /// negotiated hold time.
    pub keepalive: u16,
    /// Refuse a peer that proposes less than this (0 included); `None`: accept any legal
    /// hold time.
    pub min_hold_time: Option<u16>,
    /// Interval between outgoing connection attempts.
    pub connect_retry: Duration,
    /// Hold timer while waiting for the peer's OPEN.
    pub open_hold_time: Duration,
    /// Idle time after the first failure.
    pub idle_hold: Duration,
    /// Longest idle time after repeated failures.
    pub idle_hold_max: Duration,
    /// Established this long, a session forgets earlier failures.
    pub stable_after: Duration,
}

impl Default for TimerConfig {
    /// Fabric timers: hold 9 s, keepalive 3 s, connect retry 5 s; idle hold 1 s doubling
    /// to 60 s, forgotten after 60 s Established.
    fn default() -> Self {
        TimerConfig {
            hold_time: 9,
            keepalive: 3,
            min_hold_time: None,
            connect_retry: Duration::from_secs(5),
            open_hold_time: OPEN_HOLD_TIME,
            idle_hold: Duration::from_secs(1),
            idle_hold_max: Duration::from_secs(60),
            stable_after: Duration::from_secs(60),
        }
    }
}

impl TimerConfig {
    /// Checks the values against RFC 4271 and each other.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if matches!(self.hold_time, 1 | 2) {
            return Err(ConfigError::HoldTime(self.hold_time));
        }
        if let Some(min @ (1 | 2)) = self.min_hold_time {
            return Err(ConfigError::HoldTime(min));
        }
        if self.hold_time != 0 && (self.keepalive == 0 || self.keepalive > self.hold_time / 3) {
            return Err(ConfigError::Keepalive {
                keepalive: self.keepalive,
                hold: self.hold_time,
            });
        }
        for (name, d) in [
            ("connect-retry", self.connect_retry),
            ("open-hold-time", self.open_hold_time),
            ("idle-hold", self.idle_hold),
            ("stable-after", self.stable_after),
        ] {
            if d.is_zero() {
                return Err(ConfigError::ZeroTimer(name));
            }
        }
        if self.idle_hold > self.idle_hold_max {
            return Err(ConfigError::IdleHoldBounds);
        }
        Ok(())
    }

    /// Negotiates hold time and keepalive with the hold time of the peer's OPEN.
    pub fn negotiate(&self, peer_hold: u16) -> Result<HoldTimes, HoldError> {
        if matches!(peer_hold, 1 | 2) {
            return Err(HoldError::Illegal(peer_hold));
        }
        if let Some(min) = self.min_hold_time
            && peer_hold < min
        {
            return Err(HoldError::BelowMinimum {
                proposed: peer_hold,
                min,
            });
        }
        let hold = self.hold_time.min(peer_hold);
        let keepalive = if hold == 0 {
            0
        } else {
            self.keepalive.clamp(1, (hold / 3).max(1))
        };
        Ok(HoldTimes { hold, keepalive })
    }
}

/// The negotiated hold time and our keepalive interval, seconds (0: none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HoldTimes {
    /// Hold time: the smaller of both proposals.
    pub hold: u16,
    /// Our keepalive interval.
    pub keepalive: u16,
}

/// Why a proposed hold time is refused (OPEN Message Error / Unacceptable Hold Time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum HoldError {
    /// 1 or 2 seconds (RFC 4271 6.2).
    #[error("hold time {0} s is illegal (RFC 4271: 0 or at least 3)")]
    Illegal(u16),
    /// Below the configured minimum.
    #[error("hold time {proposed} s is below our minimum of {min} s")]
    BelowMinimum {
        /// The peer's proposal.
        proposed: u16,
        /// Our minimum.
        min: u16,
    },
}

/// Consecutive failures and the idle time they earn.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Damping {
    failures: u32,
}

impl Damping {
    /// Counts one more failure and returns how long to stay Idle.
    pub fn fail(&mut self, config: &TimerConfig) -> Duration {
        let shift = self.failures.min(16);
        self.failures = self.failures.saturating_add(1);
        config
            .idle_hold
            .saturating_mul(1u32 << shift)
            .min(config.idle_hold_max)
    }

    /// Forgets past failures (the session was stable).
    pub fn reset(&mut self) {
        self.failures = 0;
    }

    /// Consecutive failures so far.
    pub fn failures(&self) -> u32 {
        self.failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_time_is_the_smaller_and_keepalive_a_third_at_most() {
        let c = TimerConfig::default();
        assert_eq!(
            c.negotiate(90),
            Ok(HoldTimes {
                hold: 9,
                keepalive: 3
            })
        );
        assert_eq!(
            c.negotiate(6),
            Ok(HoldTimes {
                hold: 6,
                keepalive: 2
            })
        );
        assert_eq!(
            c.negotiate(3),
            Ok(HoldTimes {
                hold: 3,
                keepalive: 1
            })
        );
        assert_eq!(
            c.negotiate(0),
            Ok(HoldTimes {
                hold: 0,
                keepalive: 0
            })
        );
        assert_eq!(c.negotiate(1), Err(HoldError::Illegal(1)));
        assert_eq!(c.negotiate(2), Err(HoldError::Illegal(2)));
        let strict = TimerConfig {
            min_hold_time: Some(3),
            ..c
        };
        assert_eq!(
            strict.negotiate(0),
            Err(HoldError::BelowMinimum {
                proposed: 0,
                min: 3
            })
        );
        let zero = TimerConfig { hold_time: 0, ..c };
        assert_eq!(zero.negotiate(9).map(|h| h.hold), Ok(0));
    }

    #[test]
    fn damping_doubles_up_to_the_maximum_and_resets() {
        let c = TimerConfig::default();
        let mut d = Damping::default();
        let delays: Vec<u64> = (0..9).map(|_| d.fail(&c).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
        assert_eq!(d.failures(), 9);
        d.reset();
        assert_eq!(d.fail(&c), Duration::from_secs(1));
        for _ in 0..100 {
            d.fail(&c);
        }
        assert_eq!(d.fail(&c), Duration::from_secs(60));
    }

    #[test]
    fn validate_rejects_illegal_timers() {
        let c = TimerConfig::default();
        assert_eq!(c.validate(), Ok(()));
        for bad in [
            TimerConfig { hold_time: 1, ..c },
            TimerConfig { keepalive: 4, ..c },
            TimerConfig { keepalive: 0, ..c },
            TimerConfig {
                connect_retry: Duration::ZERO,
                ..c
            },
            TimerConfig {
                idle_hold: Duration::from_secs(120),
                ..c
            },
        ] {
            assert!(bad.validate().is_err(), "{bad:?}");
        }
        assert_eq!(
            TimerConfig {
                hold_time: 0,
                keepalive: 0,
                ..c
            }
            .validate(),
            Ok(())
        );
    }
}
