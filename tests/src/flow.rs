//! Numbered UDP flows between two namespaces, to measure loss and the longest gap in
//! delivery while something fails or restarts.
//!
//! The sender sends, from `flows` sockets (one source port each, so ECMP hashes them
//! independently), one packet per flow every `interval`, numbered per flow. The
//! receiver timestamps what arrives. [`Flows::stop`] reports, per flow, what was sent,
//! received, lost (numbers never seen) and the longest time without a packet.

use std::{
    fs::File,
    net::{IpAddr, SocketAddr, UdpSocket},
    os::fd::AsRawFd,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail};

use crate::Netns;

/// First byte of every payload, so stray datagrams are not counted.
const MAGIC: u32 = 0x666c_6f77;
/// Payload: magic, flow, sequence number.
const PAYLOAD: usize = 16;
/// Highest sequence number taken (an hour at 1 kpps per flow is 3.6M).
const MAX_SEQ: usize = 50_000_000;

/// What one flow saw.
#[derive(Debug, Clone, Default)]
pub struct FlowReport {
    /// Source port.
    pub port: u16,
    /// Packets sent.
    pub sent: u64,
    /// Distinct packets received.
    pub received: u64,
    /// Sequence numbers sent and never received.
    pub lost: u64,
    /// Longest time without an arrival: between two consecutive ones, from the start to
    /// the first, or from the last until the sender stopped.
    pub max_gap: Duration,
    /// When the last packet arrived.
    pub last_arrival: Option<Instant>,
}

/// Everything the flows saw.
#[derive(Debug, Clone, Default)]
pub struct Report {
    /// One per flow.
    pub flows: Vec<FlowReport>,
}

impl Report {
    /// Packets lost over all flows.
    pub fn lost(&self) -> u64 {
        self.flows.iter().map(|f| f.lost).sum()
    }

    /// Packets sent over all flows.
    pub fn sent(&self) -> u64 {
        self.flows.iter().map(|f| f.sent).sum()
    }

    /// The longest gap of any flow.
    pub fn max_gap(&self) -> Duration {
        self.flows
            .iter()
            .map(|f| f.max_gap)
            .max()
            .unwrap_or_default()
    }
}

/// Per flow: source port and packets sent; when the last packet was sent.
type Sent = (Vec<(u16, u64)>, Instant);
/// Per flow: arrival times of distinct packets.
type Arrivals = Vec<Vec<Instant>>;

/// Running flows; stop them with [`Flows::stop`].
pub struct Flows {
    stop: Arc<AtomicBool>,
    sender: Option<JoinHandle<Result<Sent>>>,
    receiver: Option<JoinHandle<Result<Arrivals>>>,
    started: Instant,
    ports: Vec<u16>,
}

/// Spawns a thread that has entered `ns`'s network namespace.
fn spawn_in<T: Send + 'static>(
    ns: &Netns,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<JoinHandle<Result<T>>> {
    let path = format!("/run/netns/{}", ns.name());
    let file = File::open(&path).with_context(|| format!("opening {path}"))?;
    Ok(std::thread::spawn(move || {
        // SAFETY: setns on this thread only; the fd is valid for the call.
        if unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
            bail!("setns: {}", std::io::Error::last_os_error());
        }
        f()
    }))
}

impl Flows {
    /// Starts `flows` flows from `src_ns` (address `src`) to `dst` port `port` in
    /// `dst_ns`, one packet per flow every `interval`. Waits until the receiver has its
    /// socket.
    pub fn start(
        src_ns: &Netns,
        src: IpAddr,
        dst_ns: &Netns,
        dst: IpAddr,
        port: u16,
        flows: u16,
        interval: Duration,
    ) -> Result<Flows> {
        let stop = Arc::new(AtomicBool::new(false));
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<()>>();
        let n = usize::from(flows);
        let receiver = {
            let stop = stop.clone();
            spawn_in(dst_ns, move || {
                let sock = match UdpSocket::bind(SocketAddr::new(dst, port)) {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = ready_tx.send(Err(anyhow!("bind {dst}:{port}: {e}")));
                        bail!("bind {dst}:{port}: {e}");
                    }
                };
                sock.set_read_timeout(Some(Duration::from_millis(20)))?;
                let _ = ready_tx.send(Ok(()));
                let mut arrivals: Vec<Vec<Instant>> = vec![Vec::new(); n];
                let mut seen: Vec<Vec<bool>> = vec![Vec::new(); n];
                let mut buf = [0u8; 64];
                // Drain for a moment after the stop, for packets in flight.
                let mut stop_at: Option<Instant> = None;
                loop {
                    if stop_at.is_none() && stop.load(Ordering::Relaxed) {
                        stop_at = Some(Instant::now() + Duration::from_millis(200));
                    }
                    if stop_at.is_some_and(|t| Instant::now() >= t) {
                        break;
                    }
                    let len = match sock.recv(&mut buf) {
                        Ok(len) => len,
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                            ) =>
                        {
                            continue;
                        }
                        Err(e) => bail!("receiving: {e}"),
                    };
                    let now = Instant::now();
                    let Some((flow, seq)) = parse(buf.get(..len).unwrap_or_default()) else {
                        continue;
                    };
                    let (Some(a), Some(s)) = (arrivals.get_mut(flow), seen.get_mut(flow)) else {
                        continue;
                    };
                    // Our own sender's numbers: far beyond what it can send is a stray.
                    let Ok(seq) = usize::try_from(seq) else {
                        continue;
                    };
                    if seq > MAX_SEQ {
                        continue;
                    }
                    if s.len() <= seq {
                        s.resize(seq + 1, false);
                    }
                    if let Some(slot) = s.get_mut(seq)
                        && !*slot
                    {
                        *slot = true;
                        a.push(now);
                    }
                }
                Ok(arrivals)
            })?
        };
        ready_rx
            .recv_timeout(Duration::from_secs(5))
            .map_err(|_| anyhow!("the receiver did not start"))??;
        let (ports_tx, ports_rx) = std::sync::mpsc::channel::<Result<Vec<u16>>>();
        let sender = {
            let stop = stop.clone();
            spawn_in(src_ns, move || {
                let mut socks = Vec::new();
                for _ in 0..n {
                    let s = UdpSocket::bind(SocketAddr::new(src, 0))
                        .and_then(|s| s.connect(SocketAddr::new(dst, port)).map(|()| s));
                    match s {
                        Ok(s) => socks.push(s),
                        Err(e) => {
                            let _ = ports_tx.send(Err(anyhow!("socket from {src}: {e}")));
                            bail!("socket from {src}: {e}");
                        }
                    }
                }
                let ports: Vec<u16> = socks
                    .iter()
                    .map(|s| s.local_addr().map_or(0, |a| a.port()))
                    .collect();
                let _ = ports_tx.send(Ok(ports.clone()));
                let start = Instant::now();
                let mut seq: u64 = 0;
                while !stop.load(Ordering::Relaxed) {
                    for (flow, s) in socks.iter().enumerate() {
                        let mut p = [0u8; PAYLOAD];
                        p[..4].copy_from_slice(&MAGIC.to_be_bytes());
                        p[4..8].copy_from_slice(&(flow as u32).to_be_bytes());
                        p[8..16].copy_from_slice(&seq.to_be_bytes());
                        // An unreachable destination (ICMP error) is loss, not failure.
                        let _ = s.send(&p);
                    }
                    seq += 1;
                    let next = start + interval * u32::try_from(seq).unwrap_or(u32::MAX);
                    if let Some(wait) = next.checked_duration_since(Instant::now()) {
                        std::thread::sleep(wait);
                    }
                }
                Ok((
                    ports.into_iter().map(|p| (p, seq)).collect(),
                    Instant::now(),
                ))
            })?
        };
        let ports = ports_rx
            .recv_timeout(Duration::from_secs(5))
            .map_err(|_| anyhow!("the sender did not start"))??;
        Ok(Flows {
            stop,
            sender: Some(sender),
            receiver: Some(receiver),
            started: Instant::now(),
            ports,
        })
    }

    /// Source ports of the flows.
    pub fn ports(&self) -> &[u16] {
        &self.ports
    }

    /// Stops sending, waits for packets in flight, and reports.
    pub fn stop(mut self) -> Result<Report> {
        self.finish()
    }

    fn finish(&mut self) -> Result<Report> {
        self.stop.store(true, Ordering::Relaxed);
        let (sent, last_sent) = self
            .sender
            .take()
            .ok_or_else(|| anyhow!("already stopped"))?
            .join()
            .map_err(|_| anyhow!("the sender panicked"))??;
        let arrivals = self
            .receiver
            .take()
            .ok_or_else(|| anyhow!("already stopped"))?
            .join()
            .map_err(|_| anyhow!("the receiver panicked"))??;
        let flows = sent
            .into_iter()
            .zip(arrivals)
            .map(|((port, sent), times)| {
                let received = times.len() as u64;
                let mut max_gap = Duration::ZERO;
                let mut prev = self.started;
                for t in &times {
                    max_gap = max_gap.max(t.saturating_duration_since(prev));
                    prev = *t;
                }
                // A flow that stopped arriving: its gap runs until the sending stopped.
                max_gap = max_gap.max(last_sent.saturating_duration_since(prev));
                FlowReport {
                    port,
                    sent,
                    received,
                    lost: sent.saturating_sub(received),
                    max_gap,
                    last_arrival: times.last().copied(),
                }
            })
            .collect();
        Ok(Report { flows })
    }
}

impl Drop for Flows {
    fn drop(&mut self) {
        if self.sender.is_some() {
            let _ = self.finish();
        }
    }
}

fn parse(p: &[u8]) -> Option<(usize, u64)> {
    let magic = u32::from_be_bytes(p.get(..4)?.try_into().ok()?);
    if magic != MAGIC {
        return None;
    }
    let flow = u32::from_be_bytes(p.get(4..8)?.try_into().ok()?);
    let seq = u64::from_be_bytes(p.get(8..16)?.try_into().ok()?);
    Some((flow as usize, seq))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_parse_and_strays_do_not() {
        let mut p = [0u8; PAYLOAD];
        p[..4].copy_from_slice(&MAGIC.to_be_bytes());
        p[4..8].copy_from_slice(&3u32.to_be_bytes());
        p[8..16].copy_from_slice(&77u64.to_be_bytes());
        assert_eq!(parse(&p), Some((3, 77)));
        assert_eq!(parse(&p[..10]), None);
        p[0] = 0;
        assert_eq!(parse(&p), None);
    }

    #[test]
    fn flows_over_loopback_lose_nothing() -> Result<()> {
        crate::require_root()?;
        let ns = Netns::new()?;
        let lo: IpAddr = "127.0.0.1".parse()?;
        let f = Flows::start(&ns, lo, &ns, lo, 9000, 2, Duration::from_millis(2))?;
        std::thread::sleep(Duration::from_millis(200));
        let r = f.stop()?;
        assert_eq!(r.flows.len(), 2);
        assert!(r.sent() >= 2 * 50, "{r:?}");
        assert_eq!(r.lost(), 0, "{r:?}");
        assert!(r.max_gap() < Duration::from_millis(200), "{r:?}");
        Ok(())
    }

    #[test]
    fn a_blocked_flow_shows_its_loss_and_gap() -> Result<()> {
        crate::require_root()?;
        let ns = Netns::new()?;
        let lo: IpAddr = "127.0.0.1".parse()?;
        let f = Flows::start(&ns, lo, &ns, lo, 9001, 1, Duration::from_millis(2))?;
        std::thread::sleep(Duration::from_millis(100));
        crate::sh(&format!(
            "ip netns exec {} nft 'add table ip t; add chain ip t o {{ type filter hook output priority 0; }}; add rule ip t o udp dport 9001 drop'",
            ns.name()
        ))?;
        std::thread::sleep(Duration::from_millis(300));
        crate::sh(&format!(
            "ip netns exec {} nft delete table ip t",
            ns.name()
        ))?;
        std::thread::sleep(Duration::from_millis(100));
        let r = f.stop()?;
        assert!(r.lost() >= 50, "{r:?}");
        assert!(r.max_gap() >= Duration::from_millis(250), "{r:?}");
        Ok(())
    }

    #[test]
    fn a_flow_that_never_comes_back_has_a_gap_until_the_end() -> Result<()> {
        crate::require_root()?;
        let ns = Netns::new()?;
        let lo: IpAddr = "127.0.0.1".parse()?;
        let f = Flows::start(&ns, lo, &ns, lo, 9002, 1, Duration::from_millis(2))?;
        std::thread::sleep(Duration::from_millis(100));
        crate::sh(&format!(
            "ip netns exec {} nft 'add table ip t; add chain ip t o {{ type filter hook output priority 0; }}; add rule ip t o udp dport 9002 drop'",
            ns.name()
        ))?;
        std::thread::sleep(Duration::from_millis(400));
        let r = f.stop()?;
        assert!(r.max_gap() >= Duration::from_millis(350), "{r:?}");
        assert!(r.flows[0].last_arrival.is_some(), "{r:?}");
        Ok(())
    }
}
