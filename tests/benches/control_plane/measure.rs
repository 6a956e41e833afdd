//! One measurement: fresh namespaces, one receiver, one feed; the time from Established
//! until the whole feed is in the receiver's Loc-RIB, its memory then, and the time
//! until the Loc-RIB is empty again after the feeder's session died.

use std::{
    net::{Ipv4Addr, SocketAddr},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use lab::{
    Netns,
    feeder::{Feed, Feeder, SessionSpec},
    peer,
};

use crate::receiver::{Kind, PeerSetup};

/// The feeder's end of the link.
pub const FEEDER_ADDR: Ipv4Addr = Ipv4Addr::new(10, 255, 0, 1);
/// The receiver's end of the link.
pub const RECEIVER_ADDR: Ipv4Addr = Ipv4Addr::new(10, 255, 0, 2);
/// The link's prefix length.
const LINK_PREFIX_LEN: u8 = 24;
/// The feeder's AS: 4-octet, so the OPEN carries AS_TRANS.
pub const FEEDER_ASN: u32 = 4_200_000_100;
/// The receiver's AS.
pub const RECEIVER_ASN: u32 = 65_000;
/// Hold time the feeder proposes (the receivers' defaults are 90 s and more).
const HOLD_TIME: u16 = 90;
/// Time after the whole feed is in before memory is read: the receiver may still be
/// finishing work it queued (FIB, export bookkeeping), which belongs to the load.
const SETTLE: Duration = Duration::from_secs(1);

/// What one run measured.
#[derive(Debug, Clone, Copy)]
pub struct Run {
    /// From Established until the whole feed was in the Loc-RIB (the return of the
    /// query that saw it: an upper bound).
    pub receive: Duration,
    /// How much earlier than `receive` the feed may have been complete (see
    /// `Done::window`): the measurement's resolution.
    pub receive_window: Duration,
    /// From Established until the feeder had handed its last byte to the kernel.
    pub feeder_sent: Duration,
    /// Resident memory of the receiver's processes before the session came up.
    pub idle_rss: u64,
    /// Peak resident memory (sum of the processes' high-water marks) with the whole feed
    /// in, read [`SETTLE`] after it was.
    pub peak_rss: u64,
    /// The same high-water marks once the withdrawal was over.
    pub peak_rss_after_withdraw: u64,
    /// From the feeder's close until the Loc-RIB was empty (an upper bound, likewise).
    pub withdraw: Duration,
    /// The resolution of `withdraw`.
    pub withdraw_window: Duration,
    /// Receiver queries made while waiting for the load.
    pub polls: u32,
}

/// Polling: the pause between two queries (each query's own duration comes on top).
pub struct Poll {
    /// Pause after each query.
    pub interval: Duration,
    /// Fixed part of the time allowed for the load and for the withdrawal.
    pub timeout_base: Duration,
    /// Time allowed per route on top of that.
    pub timeout_per_route: Duration,
}

impl Poll {
    fn timeout(&self, routes: u32) -> Duration {
        self.timeout_base + self.timeout_per_route * routes
    }
}

/// The link and both ends' settings.
fn setup() -> PeerSetup {
    PeerSetup {
        local: RECEIVER_ADDR,
        prefix_len: LINK_PREFIX_LEN,
        asn: RECEIVER_ASN,
        iface: "recv0".into(),
        feeder: FEEDER_ADDR,
        feeder_asn: FEEDER_ASN,
    }
}

/// One run of `kind` with `feed`.
pub fn run_once(kind: Kind, feed: &Arc<Feed>, poll: &Poll) -> Result<Run> {
    let setup = setup();
    let feeder_ns = Netns::new()?;
    let receiver_ns = Netns::new()?;
    lab::veth(&feeder_ns, "feed0", &receiver_ns, &setup.iface)?;
    feeder_ns.ip(&[
        "addr",
        "add",
        &format!("{FEEDER_ADDR}/{LINK_PREFIX_LEN}"),
        "dev",
        "feed0",
    ])?;
    receiver_ns.ip(&[
        "addr",
        "add",
        &format!("{}/{}", setup.local, setup.prefix_len),
        "dev",
        &setup.iface,
    ])?;

    let mut rx = kind.start(&receiver_ns, &setup)?;
    let pids = rx.pids()?;
    let idle_rss = sum(&pids, peer::rss_bytes)?;
    let session = SessionSpec {
        asn: FEEDER_ASN,
        router_id: FEEDER_ADDR,
        peer_asn: RECEIVER_ASN,
        hold_time: HOLD_TIME,
        capabilities: Vec::new(),
    };
    let n = u64::from(feed.routes());
    let feeder = Feeder::start(
        &feeder_ns,
        SocketAddr::from((setup.local, 179)),
        &session,
        feed.clone(),
        Duration::from_secs(30),
    )
    .with_context(|| format!("{kind}: the feeder's session did not come up"))?;
    let established = feeder.established_at();

    // Load: the timestamp is taken after the query that saw the whole feed returned.
    let timeout = poll.timeout(feed.routes());
    let mut polls = 0;
    let loaded = wait_for(kind, "load", timeout, poll.interval, || {
        polls += 1;
        feeder.check()?;
        let got = rx.routes()?;
        if got > n {
            bail!("{kind} reports {got} routes, more than the {n} sent");
        }
        Ok((
            got == n && rx.selected(feed.last_prefix())?,
            got.to_string(),
        ))
    })?;
    let receive = loaded.at - established;
    let feeder_sent = feeder
        .sent_at()
        .map_or(receive, |s| s.saturating_duration_since(established));

    std::thread::sleep(SETTLE);
    feeder.check()?;
    rx.confirm(n)
        .with_context(|| format!("{kind}: after the load"))?;
    let peak_rss = sum(&pids, peer::peak_rss_bytes)?;

    // Withdrawal: the feeder closes its socket, as when its process dies.
    let died = feeder.die()?;
    let emptied = wait_for(kind, "withdrawal", timeout, poll.interval, || {
        Ok(match rx.remaining()? {
            Some(left) => (left == 0, left.to_string()),
            None => (false, "still being removed".into()),
        })
    })?;
    let withdraw = emptied.at.saturating_duration_since(died);
    let peak_rss_after_withdraw = sum(&pids, peer::peak_rss_bytes)?;
    Ok(Run {
        receive,
        receive_window: loaded.window,
        feeder_sent,
        idle_rss,
        peak_rss,
        peak_rss_after_withdraw,
        withdraw,
        withdraw_window: emptied.window,
        polls,
    })
}

/// When a wait ended.
struct Done {
    /// The instant the query that saw the end returned.
    at: Instant,
    /// How long before `at` the end may have come: back to the start of the previous
    /// query, which still saw it unfinished (or to the start of the wait).
    window: Duration,
}

/// Polls `done` (which also says what it saw), pausing `interval` after each
/// query returns, until it says done.
fn wait_for(
    kind: Kind,
    what: &str,
    timeout: Duration,
    interval: Duration,
    mut done: impl FnMut() -> Result<(bool, String)>,
) -> Result<Done> {
    let start = Instant::now();
    let mut previous_start = start;
    loop {
        let query_start = Instant::now();
        let (finished, count) = done().with_context(|| format!("{kind}: during the {what}"))?;
        let now = Instant::now();
        if finished {
            return Ok(Done {
                at: now,
                window: now - previous_start,
            });
        }
        if now - start > timeout {
            bail!(
                "{kind}: {what} not finished after {:.1} s (last seen: {count})",
                timeout.as_secs_f64()
            );
        }
        previous_start = query_start;
        std::thread::sleep(interval);
    }
}

/// `f` summed over `pids`.
fn sum(pids: &[u32], f: impl Fn(u32) -> Result<u64>) -> Result<u64> {
    pids.iter().map(|&p| f(p)).sum()
}
