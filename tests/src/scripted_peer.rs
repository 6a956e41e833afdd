//! A scripted BGP peer for tests and benchmarks: one eBGP session, built on the
//! project's codec (`bgp-wire`), whose UPDATEs the caller sends one by one, so a test
//! decides exactly what the receiver learns and when.
//!
//! [`ScriptedPeer::connect`] connects from inside a namespace to a speaker that
//! listens, exchanges OPENs (4-octet AS, IPv4 and IPv6 unicast, route refresh, and the
//! [`SessionSpec::capabilities`] given, e.g. graceful restart: without it, when the peer
//! closes, the receiver drops its routes at once) and returns once Established. A
//! connection the receiver refuses, at TCP level or with Cease/Connection Rejected (while
//! it holds the session idle after a failure), is tried again until the timeout.
//! Afterwards a thread sends KEEPALIVEs and another reads and counts what the receiver
//! sends; [`ScriptedPeer::check`] fails once the receiver has sent a NOTIFICATION (kept:
//! [`ScriptedPeer::notification`]) or closed the session. [`ScriptedPeer::close`] closes
//! the TCP connection (FIN, no NOTIFICATION: as when the peer's process dies).
//!
//! Messages can be encoded ahead of time ([`encode_announce`], [`encode_withdraw`]) and
//! sent with [`ScriptedPeer::send`], so a benchmark's timestamp covers only the send.

use std::{
    io::Write,
    net::{IpAddr, SocketAddr, TcpStream},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail};
use bgp_wire::{
    AsPath, Family, MpNextHop, Notification, Origin, PathAttributes, encode_updates,
    encode_withdrawals,
};
use bytes::BytesMut;
use ipnet::IpNet;

use crate::{
    Netns,
    bgp_session::{Kind, Rejected, Session, send_keepalives},
};

/// The scripted peer's side of the session.
pub use crate::bgp_session::SessionSpec;
/// The codec context of a session with the receiver.
pub use crate::bgp_session::context;

/// How the scripted peer's session differs from the feeder's.
static KIND: Kind = Kind {
    who: "scripted peer",
    read_thread: "peer-read",
    families: &[Family::IPV4_UNICAST, Family::IPV6_UNICAST],
    required: &[],
};

/// Attributes of an eBGP route from `asn` through `as_path` (after `asn`), with IGP
/// origin.
pub fn attributes(asn: u32, as_path: &[u32]) -> PathAttributes {
    PathAttributes {
        origin: Origin::Igp,
        as_path: AsPath::from_sequence(std::iter::once(asn).chain(as_path.iter().copied())),
        ..PathAttributes::default()
    }
}

/// UPDATEs announcing `prefixes` with `attrs` and `next_hop` (IPv4 prefixes with an
/// IPv4 next hop in NLRI, IPv6 prefixes with an IPv6 next hop in MP_REACH_NLRI).
pub fn encode_announce(
    attrs: &PathAttributes,
    next_hop: IpAddr,
    prefixes: &[IpNet],
) -> Result<Vec<u8>> {
    let mut out = BytesMut::new();
    let (v4, v6) = split(prefixes);
    let ctx = context();
    match next_hop {
        IpAddr::V4(nh) => {
            if !v6.is_empty() {
                bail!("IPv6 prefixes need an IPv6 next hop");
            }
            if !v4.is_empty() {
                encode_updates(
                    attrs,
                    Family::IPV4_UNICAST,
                    Some(MpNextHop::Ipv4(nh)),
                    &v4,
                    &ctx,
                    &mut out,
                )?;
            }
        }
        IpAddr::V6(global) => {
            if !v4.is_empty() {
                bail!("IPv4 prefixes need an IPv4 next hop");
            }
            if !v6.is_empty() {
                let nh = MpNextHop::Ipv6 {
                    global,
                    link_local: None,
                };
                encode_updates(attrs, Family::IPV6_UNICAST, Some(nh), &v6, &ctx, &mut out)?;
            }
        }
    }
    Ok(out.to_vec())
}

/// UPDATEs withdrawing `prefixes` (of either family).
pub fn encode_withdraw(prefixes: &[IpNet]) -> Result<Vec<u8>> {
    let mut out = BytesMut::new();
    let (v4, v6) = split(prefixes);
    for (family, list) in [(Family::IPV4_UNICAST, v4), (Family::IPV6_UNICAST, v6)] {
        if !list.is_empty() {
            encode_withdrawals(family, &list, &context(), &mut out)?;
        }
    }
    Ok(out.to_vec())
}

fn split(prefixes: &[IpNet]) -> (Vec<IpNet>, Vec<IpNet>) {
    prefixes.iter().partition(|p| matches!(p, IpNet::V4(_)))
}

/// A running scripted session; see the module documentation. Dropping it closes the
/// session like [`ScriptedPeer::close`].
pub struct ScriptedPeer {
    session: Session,
    writer: Arc<Mutex<TcpStream>>,
}

impl ScriptedPeer {
    /// Connects from inside `ns` to `peer` and brings the session up, trying again until
    /// `timeout` while the connection is refused or the session rejected (a receiver
    /// holds a peer that just went down idle for a while).
    pub fn connect(
        ns: &Netns,
        peer: SocketAddr,
        session: &SessionSpec,
        timeout: Duration,
    ) -> Result<ScriptedPeer> {
        let deadline = Instant::now() + timeout;
        loop {
            let stream = Session::connect(ns, peer, deadline, &KIND)?;
            match Self::run(stream, session, deadline) {
                Err(e)
                    if e.downcast_ref::<Rejected>().is_some()
                        && deadline.saturating_duration_since(Instant::now()) > REJECTED_RETRY =>
                {
                    std::thread::sleep(REJECTED_RETRY);
                }
                other => return other,
            }
        }
    }

    /// Brings the session up on a connected `stream`.
    pub fn run(
        stream: TcpStream,
        session: &SessionSpec,
        deadline: Instant,
    ) -> Result<ScriptedPeer> {
        let (mut session, stopped) = Session::establish(stream, session, &KIND, deadline)?;
        let writer = Arc::new(Mutex::new(session.stream().try_clone()?));
        let keepalive = session.keepalive();
        let state = session.state().clone();
        let w = writer.clone();
        session.spawn("peer-keepalive", move || {
            // A poisoned writer: a send panicked, and the session is no more use.
            let write = |ka: &[u8]| w.lock().map_or(Ok(()), |mut w| w.write_all(ka));
            if let Err(e) = send_keepalives(write, keepalive, &stopped) {
                state.fail(format!("scripted peer: sending KEEPALIVE: {e}"));
            }
        })?;
        Ok(ScriptedPeer { session, writer })
    }

    /// When the session became Established (the receiver's KEEPALIVE was read).
    pub fn established_at(&self) -> Instant {
        self.session.established_at()
    }

    /// UPDATEs the receiver has sent so far.
    pub fn updates_received(&self) -> u64 {
        self.session.state().updates_received()
    }

    /// Writes encoded messages (whole ones) to the session.
    pub fn send(&self, bytes: &[u8]) -> Result<()> {
        self.check()?;
        let mut w = self
            .writer
            .lock()
            .map_err(|_| anyhow!("scripted peer: writer poisoned"))?;
        w.write_all(bytes).context("scripted peer: sending")
    }

    /// Announces `prefixes` with `attrs` through `next_hop`.
    pub fn announce(
        &self,
        attrs: &PathAttributes,
        next_hop: IpAddr,
        prefixes: &[IpNet],
    ) -> Result<()> {
        self.send(&encode_announce(attrs, next_hop, prefixes)?)
    }

    /// Withdraws `prefixes`.
    pub fn withdraw(&self, prefixes: &[IpNet]) -> Result<()> {
        self.send(&encode_withdraw(prefixes)?)
    }

    /// The NOTIFICATION the receiver sent, if it did.
    pub fn notification(&self) -> Option<Notification> {
        self.session.state().notification()
    }

    /// Fails if the receiver sent a NOTIFICATION, closed the session, or a send failed.
    pub fn check(&self) -> Result<()> {
        self.session.state().check()
    }

    /// Closes the session (FIN, no NOTIFICATION) and returns the instant it did; waits
    /// for the session's threads to end.
    pub fn close(mut self) -> Result<Instant> {
        self.check()?;
        Ok(self.session.shut())
    }
}

/// How long to wait before connecting again after a [`Rejected`].
const REJECTED_RETRY: Duration = Duration::from_millis(200);

#[cfg(test)]
mod tests {
    use std::{
        collections::HashSet,
        net::{Ipv4Addr, TcpListener},
    };

    use super::*;
    use bgp_wire::{Message, frame_length};

    fn decode_all(bytes: &[u8]) -> Vec<Message> {
        let ctx = context();
        let mut out = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let len = frame_length(&bytes[at..], &ctx).unwrap().unwrap();
            out.push(Message::decode(&bytes[at..at + len], &ctx).unwrap());
            at += len;
        }
        out
    }

    #[test]
    fn announcements_and_withdrawals_carry_every_prefix_of_both_families() {
        let v4: Vec<IpNet> = (0..3000u32)
            .map(|i| IpNet::V4(ipnet::Ipv4Net::from(Ipv4Addr::from(0x0a00_0000 + i))))
            .collect();
        let bytes = encode_announce(
            &attributes(65001, &[65002]),
            "192.0.2.1".parse().unwrap(),
            &v4,
        )
        .unwrap();
        let mut seen = HashSet::new();
        for m in decode_all(&bytes) {
            let Message::Update(u) = m else { panic!() };
            assert_eq!(
                u.attributes.as_ref().unwrap().next_hop,
                Some(Ipv4Addr::new(192, 0, 2, 1))
            );
            seen.extend(u.nlri.iter().map(|n| IpNet::V4(*n)));
        }
        assert_eq!(seen.len(), 3000);
        assert!(
            encode_announce(
                &attributes(1, &[]),
                "192.0.2.1".parse().unwrap(),
                &["fd00::/64".parse().unwrap()]
            )
            .is_err()
        );

        let v6: IpNet = "fd00:1::5/128".parse().unwrap();
        let mixed = [v4[0], v6];
        let w = decode_all(&encode_withdraw(&mixed).unwrap());
        assert_eq!(w.len(), 2);
        let Message::Update(u4) = &w[0] else { panic!() };
        assert_eq!(u4.withdrawn.len(), 1);
        let Message::Update(u6) = &w[1] else { panic!() };
        assert_eq!(u6.mp_unreach.as_ref().unwrap().withdrawn, vec![v6]);
    }

    /// A receiver good enough for the test: OPEN, KEEPALIVE, then counts routes until
    /// the peer closes.
    fn fake_receiver(listener: TcpListener) -> usize {
        let mut routes = 0;
        crate::bgp_session::fake_receiver(listener, 65000, |u| {
            routes += u.nlri.len();
            routes -= u.withdrawn.len();
        });
        routes
    }

    #[test]
    fn a_session_sends_what_it_is_told_and_closes() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let receiver = std::thread::spawn(move || fake_receiver(listener));
        let session = SessionSpec {
            asn: 4_200_000_100,
            router_id: Ipv4Addr::new(10, 255, 0, 1),
            peer_asn: 65000,
            hold_time: 90,
            capabilities: Vec::new(),
        };
        let peer = ScriptedPeer::run(
            TcpStream::connect(addr).unwrap(),
            &session,
            Instant::now() + Duration::from_secs(10),
        )
        .unwrap();
        let prefixes: Vec<IpNet> = (0..10u32)
            .map(|i| IpNet::V4(ipnet::Ipv4Net::from(Ipv4Addr::from(0x0a00_0000 + i))))
            .collect();
        let nh: IpAddr = "10.255.0.1".parse().unwrap();
        peer.announce(&attributes(session.asn, &[]), nh, &prefixes)
            .unwrap();
        peer.withdraw(&prefixes[..3]).unwrap();
        peer.close().unwrap();
        assert_eq!(receiver.join().unwrap(), 7);
    }
}
