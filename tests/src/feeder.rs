//! A fast BGP feeder for control-plane benchmarks: one eBGP session that announces N
//! IPv4 /32 routes, pre-encoded, as fast as the receiver takes them.
//!
//! The routes ([`Feed`]) are encoded once, before any session, with the project's codec
//! (`bgp-wire`'s UPDATE packer: as many /32s per 4096-octet UPDATE as fit, ~800), spread
//! over a handful of attribute sets, and closed by an End-of-RIB. A [`Feeder`] connects
//! to the receiver from inside a namespace, exchanges OPENs (4-octet AS, IPv4 unicast
//! multiprotocol, no graceful restart: when the feeder dies its routes are withdrawn at
//! once), and as soon as the session is Established writes the whole feed, then only
//! KEEPALIVEs until it is told to die, which closes the socket.
//!
//! The feeder never enforces the receiver's hold time (a busy receiver may be late with
//! its KEEPALIVEs), but it fails loudly when the receiver sends a NOTIFICATION or closes
//! the session.

use std::{
    io::{Read, Write},
    net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream},
    sync::{Arc, Mutex, mpsc},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, anyhow, bail};
use bgp_wire::{
    AsPath, Community, Family, LargeCommunity, Message, Origin, PathAttributes, Update,
    encode_updates, frame_length,
};
use bytes::BytesMut;
use ipnet::{IpNet, Ipv4Net};

use crate::{
    Netns,
    bgp_session::{Kind, Session, context, keepalive_message, send_keepalives},
};

/// Feed bytes written with one `write_all` (whole messages): between two of them the
/// writer may send a KEEPALIVE.
const CHUNK: usize = 64 * 1024;

/// The order a feed announces its routes in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FeedOrder {
    /// Address by address, as FRR sends its table.
    #[default]
    Ascending,
    /// Scattered over the range, as a peer that sends from a hash table may: route `i`
    /// is `first + i * P mod N` for a prime `P` larger than `N`, so no two routes sent
    /// one after the other are neighbours.
    Scattered,
}

/// [`FeedOrder::Scattered`]'s multiplier: a prime (Knuth's 2^32 / golden ratio).
const SCATTER: u64 = 2_654_435_761;

/// What to announce.
#[derive(Debug, Clone)]
pub struct FeedSpec {
    /// Number of /32 routes.
    pub routes: u32,
    /// The first /32; the others are the addresses after it, in `order`.
    pub first: Ipv4Addr,
    /// The order they are announced in.
    pub order: FeedOrder,
    /// The feeder's AS: the first AS of every AS path.
    pub asn: u32,
    /// NEXT_HOP of every route (the feeder's address on the link).
    pub next_hop: Ipv4Addr,
    /// Number of distinct attribute sets, each for one contiguous block of routes.
    pub attribute_sets: usize,
}

/// The pre-encoded UPDATEs of a [`FeedSpec`], End-of-RIB last.
pub struct Feed {
    bytes: Vec<u8>,
    /// End offsets of the chunks written at once, each at a message boundary.
    chunk_ends: Vec<usize>,
    routes: u32,
    updates: usize,
    last: Ipv4Net,
}

impl Feed {
    /// Encodes the routes of `spec` for a 4-octet-AS eBGP session without extended
    /// messages.
    pub fn encode(spec: &FeedSpec) -> Result<Feed> {
        if spec.routes == 0 || spec.attribute_sets == 0 {
            bail!("a feed needs at least one route and one attribute set");
        }
        let first = u32::from(spec.first);
        first
            .checked_add(spec.routes - 1)
            .ok_or_else(|| anyhow!("{} routes from {} overflow IPv4", spec.routes, spec.first))?;
        let n = u64::from(spec.routes);
        if spec.order == FeedOrder::Scattered && n % SCATTER == 0 {
            bail!("a scattered feed cannot have {n} routes (a multiple of {SCATTER})");
        }
        // The i-th route sent.
        let address = |i: u32| match spec.order {
            FeedOrder::Ascending => first + i,
            FeedOrder::Scattered => first + (u64::from(i) * SCATTER % n) as u32,
        };
        let ctx = context();
        let sets = attribute_sets(spec);
        let mut out = BytesMut::with_capacity(spec.routes as usize * 5 + 4096);
        let mut updates = 0;
        let per_set = spec.routes.div_ceil(sets.len() as u32);
        let mut next = 0;
        for attrs in &sets {
            let count = per_set.min(spec.routes - next);
            let prefixes: Vec<IpNet> = (next..next + count)
                .map(|i| IpNet::V4(Ipv4Net::from(Ipv4Addr::from(address(i)))))
                .collect();
            updates += encode_updates(attrs, Family::IPV4_UNICAST, None, &prefixes, &ctx, &mut out)
                .context("encoding the feed's UPDATEs")?;
            next += count;
            if next == spec.routes {
                break;
            }
        }
        let last = address(spec.routes - 1);
        Message::Update(Box::new(Update::end_of_rib(Family::IPV4_UNICAST)))
            .encode(&ctx, &mut out)
            .context("encoding End-of-RIB")?;
        let bytes = out.to_vec();
        let chunk_ends = chunk_ends(&bytes)?;
        Ok(Feed {
            bytes,
            chunk_ends,
            routes: spec.routes,
            updates,
            last: Ipv4Net::from(Ipv4Addr::from(last)),
        })
    }

    /// Number of routes announced.
    pub fn routes(&self) -> u32 {
        self.routes
    }

    /// Number of UPDATEs carrying routes (the End-of-RIB not counted).
    pub fn updates(&self) -> usize {
        self.updates
    }

    /// Size on the wire, End-of-RIB included.
    pub fn len_bytes(&self) -> usize {
        self.bytes.len()
    }

    /// The last route announced.
    pub fn last_prefix(&self) -> Ipv4Net {
        self.last
    }

    /// Every message, in order, as one buffer.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    fn chunks(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.chunk_ends.iter().copied());
        starts
            .zip(self.chunk_ends.iter().copied())
            .map(|(s, e)| &self.bytes[s..e])
    }
}

/// The attribute sets of a feed: ORIGIN, AS paths of 1 to 5 hops starting with the
/// feeder's AS, MEDs and standard and large communities that differ from set to set.
pub fn attribute_sets(spec: &FeedSpec) -> Vec<PathAttributes> {
    (0..spec.attribute_sets)
        .map(|i| {
            let k = i as u32;
            let hops = (i % 5) as u32;
            let path = std::iter::once(spec.asn).chain((0..hops).map(|h| 64_600 + k * 10 + h));
            PathAttributes {
                origin: if i % 3 == 2 {
                    Origin::Incomplete
                } else {
                    Origin::Igp
                },
                as_path: AsPath::from_sequence(path),
                next_hop: Some(spec.next_hop),
                med: (i % 2 == 1).then_some(k * 10),
                communities: (0..i % 4)
                    .map(|c| Community::new(64_512, (k * 100 + c as u32) as u16))
                    .collect(),
                large_communities: if i % 4 == 3 {
                    vec![LargeCommunity {
                        global: spec.asn,
                        local1: k,
                        local2: 1,
                    }]
                } else {
                    Vec::new()
                },
                ..PathAttributes::default()
            }
        })
        .collect()
}

/// Chunk boundaries of a buffer of whole messages (read from their length fields).
fn chunk_ends(bytes: &[u8]) -> Result<Vec<usize>> {
    let ctx = context();
    let mut ends = Vec::new();
    let (mut at, mut chunk_start) = (0, 0);
    while at < bytes.len() {
        let len = frame_length(&bytes[at..], &ctx)
            .map_err(|e| anyhow!("feed message at {at}: {e}"))?
            .ok_or_else(|| anyhow!("feed ends inside a header at {at}"))?;
        if at + len - chunk_start > CHUNK && at > chunk_start {
            ends.push(at);
            chunk_start = at;
        }
        at += len;
    }
    if at != bytes.len() {
        bail!("feed ends inside a message");
    }
    ends.push(at);
    Ok(ends)
}

/// The feeder's side of the session ([`SessionSpec::capabilities`] are added to its
/// OPEN: leave them empty for a session without graceful restart).
pub use crate::bgp_session::SessionSpec;

/// How the feeder's session differs from the scripted peer's.
static KIND: Kind = Kind {
    who: "feeder",
    read_thread: "feeder-read",
    families: &[Family::IPV4_UNICAST],
    required: &[Family::IPV4_UNICAST],
};

/// A running feeder session; see the module documentation. Dropping it closes the
/// session like [`Feeder::die`].
pub struct Feeder {
    session: Session,
    /// When the last feed byte was handed to the kernel.
    sent_at: Arc<Mutex<Option<Instant>>>,
}

impl Feeder {
    /// Connects from inside `ns` to `peer` (retrying while refused, until `timeout`),
    /// brings the session up and starts sending `feed`. Returns once Established: the
    /// instant the receiver's KEEPALIVE arrived is [`Feeder::established_at`], and the
    /// first UPDATE follows it at once.
    pub fn start(
        ns: &Netns,
        peer: SocketAddr,
        session: &SessionSpec,
        feed: Arc<Feed>,
        timeout: Duration,
    ) -> Result<Feeder> {
        let deadline = Instant::now() + timeout;
        let stream = Session::connect(ns, peer, deadline, &KIND)?;
        Self::run(stream, session, feed, deadline)
    }

    /// Brings the session up on a connected `stream` and starts sending `feed`.
    pub fn run(
        stream: TcpStream,
        session: &SessionSpec,
        feed: Arc<Feed>,
        deadline: Instant,
    ) -> Result<Feeder> {
        let (mut session, stopped) = Session::establish(stream, session, &KIND, deadline)?;
        let sent_at = Arc::new(Mutex::new(None));
        let stream = session.stream().try_clone()?;
        let keepalive = session.keepalive();
        let state = session.state().clone();
        let sent = sent_at.clone();
        session.spawn("feeder-write", move || {
            if let Err(e) = write_feed(stream, &feed, keepalive, &stopped, &sent) {
                state.fail(format!("feeder: sending: {e:#}"));
            }
        })?;
        Ok(Feeder { session, sent_at })
    }

    /// When the session became Established (the receiver's KEEPALIVE was read).
    pub fn established_at(&self) -> Instant {
        self.session.established_at()
    }

    /// When the last byte of the feed was handed to the kernel, once it has been.
    pub fn sent_at(&self) -> Option<Instant> {
        self.sent_at.lock().ok().and_then(|s| *s)
    }

    /// Fails if the receiver sent a NOTIFICATION, closed the session, or sending failed.
    pub fn check(&self) -> Result<()> {
        self.session.state().check()
    }

    /// Closes the session (FIN, no NOTIFICATION: as when the feeder's process dies) and
    /// returns the instant it did; waits for the session's threads to end.
    pub fn die(mut self) -> Result<Instant> {
        let at = self.session.shut();
        self.check()?;
        Ok(at)
    }
}

/// Writes the feed, a KEEPALIVE between chunks when one is due, then KEEPALIVEs until
/// `stop` is disconnected.
fn write_feed(
    mut stream: TcpStream,
    feed: &Feed,
    keepalive: Option<Duration>,
    stop: &mpsc::Receiver<()>,
    sent_at: &Mutex<Option<Instant>>,
) -> Result<()> {
    let ka = keepalive_message();
    let mut next_ka = keepalive.map(|k| Instant::now() + k);
    for chunk in feed.chunks() {
        stream.write_all(chunk)?;
        if let (Some(at), Some(k)) = (next_ka, keepalive)
            && Instant::now() >= at
        {
            stream.write_all(&ka)?;
            next_ka = Some(Instant::now() + k);
        }
    }
    if let Ok(mut s) = sent_at.lock() {
        *s = Some(Instant::now());
    }
    send_keepalives(|ka| stream.write_all(ka), keepalive, stop)?;
    Ok(())
}

/// How fast the feeder can write `feed` into a TCP socket whose reader only discards
/// (loopback, in the caller's namespace): the time from the first write until the sink
/// has read the last byte.
pub fn sink_time(feed: &Feed) -> Result<Duration> {
    let listener = TcpListener::bind("127.0.0.1:0").context("binding the sink")?;
    let addr = listener.local_addr()?;
    let sink = std::thread::spawn(move || -> Result<usize> {
        let (mut s, _) = listener.accept()?;
        let mut buf = vec![0u8; 256 * 1024];
        let mut total = 0;
        loop {
            match s.read(&mut buf)? {
                0 => return Ok(total),
                n => total += n,
            }
        }
    });
    let mut stream = TcpStream::connect(addr).context("connecting to the sink")?;
    let start = Instant::now();
    for chunk in feed.chunks() {
        stream.write_all(chunk)?;
    }
    stream.shutdown(Shutdown::Write)?;
    let got = sink.join().map_err(|_| anyhow!("sink thread panicked"))??;
    let took = start.elapsed();
    if got != feed.len_bytes() {
        bail!("the sink read {got} bytes of {}", feed.len_bytes());
    }
    Ok(took)
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn spec(routes: u32) -> FeedSpec {
        FeedSpec {
            routes,
            first: Ipv4Addr::new(100, 64, 0, 0),
            order: FeedOrder::Ascending,
            asn: 4_200_000_100,
            next_hop: Ipv4Addr::new(10, 255, 0, 1),
            attribute_sets: 5,
        }
    }

    /// Every message of a feed, decoded.
    fn decode_all(bytes: &[u8]) -> Vec<Message> {
        let ctx = context();
        let mut out = Vec::new();
        let mut at = 0;
        while at < bytes.len() {
            let len = frame_length(&bytes[at..], &ctx).unwrap().unwrap();
            assert!(len <= 4096);
            out.push(Message::decode(&bytes[at..at + len], &ctx).unwrap());
            at += len;
        }
        out
    }

    #[test]
    fn a_feed_announces_every_route_once_over_all_sets_then_end_of_rib() {
        for order in [FeedOrder::Ascending, FeedOrder::Scattered] {
            every_route_once(order);
        }
    }

    fn every_route_once(order: FeedOrder) {
        let s = FeedSpec {
            order,
            ..spec(10_007)
        };
        let feed = Feed::encode(&s).unwrap();
        let messages = decode_all(feed.bytes());
        assert_eq!(messages.len(), feed.updates() + 1);
        let Some(Message::Update(eor)) = messages.last() else {
            panic!("last message is not an UPDATE");
        };
        assert_eq!(eor.end_of_rib_family(), Some(Family::IPV4_UNICAST));
        let sets = attribute_sets(&s);
        assert_eq!(sets.iter().collect::<HashSet<_>>().len(), 5);
        let mut seen = HashSet::new();
        let mut used = HashSet::new();
        for m in &messages[..messages.len() - 1] {
            let Message::Update(u) = m else {
                panic!("not an UPDATE: {m:?}");
            };
            let attrs = u.attributes.as_ref().unwrap();
            used.insert(sets.iter().position(|a| a == attrs).unwrap());
            for n in &u.nlri {
                assert_eq!(n.prefix_len(), 32);
                assert!(seen.insert(*n), "{n} announced twice");
            }
            // Scattered: no route is sent right after one of its 16 neighbours.
            for w in u.nlri.windows(2) {
                let d = u32::from(w[0].addr()).abs_diff(u32::from(w[1].addr()));
                match order {
                    FeedOrder::Ascending => assert_eq!(d, 1),
                    FeedOrder::Scattered => assert!(d >= 16, "{} then {}", w[0], w[1]),
                }
            }
        }
        assert_eq!(used.len(), 5, "every attribute set is used");
        assert_eq!(seen.len(), 10_007);
        assert!(seen.iter().all(|n| {
            (u32::from(Ipv4Addr::new(100, 64, 0, 0))
                ..u32::from(Ipv4Addr::new(100, 64, 0, 0)) + 10_007)
                .contains(&u32::from(n.addr()))
        }));
        assert!(seen.contains(&feed.last_prefix()));
        if order == FeedOrder::Ascending {
            assert_eq!(feed.last_prefix().to_string(), "100.64.39.22/32");
        }
        // Packed full: ~800 /32s per message, so few messages.
        assert!(feed.updates() <= 10_007 / 700 + 5, "{}", feed.updates());
        let chunked: usize = feed.chunks().map(<[u8]>::len).sum();
        assert_eq!(chunked, feed.len_bytes());
        assert!(feed.chunks().all(|c| c.len() <= CHUNK));
    }

    #[test]
    fn feeds_that_cannot_exist_are_refused() {
        assert!(Feed::encode(&spec(0)).is_err());
        let mut s = spec(10);
        s.first = Ipv4Addr::new(255, 255, 255, 250);
        assert!(Feed::encode(&s).is_err());
    }

    /// A receiver good enough for the test: OPEN, KEEPALIVE, then counts routes and
    /// looks for the End-of-RIB.
    fn fake_receiver(listener: TcpListener, asn: u32) -> (usize, bool) {
        let (mut routes, mut eor) = (0, false);
        crate::bgp_session::fake_receiver(listener, asn, |u| {
            eor |= u.end_of_rib_family().is_some();
            routes += u.nlri.len();
        });
        (routes, eor)
    }

    #[test]
    fn a_session_sends_the_whole_feed_and_dies_by_closing() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let receiver = std::thread::spawn(move || fake_receiver(listener, 65000));
        let feed = Arc::new(Feed::encode(&spec(50_000)).unwrap());
        let session = SessionSpec {
            asn: 4_200_000_100,
            router_id: Ipv4Addr::new(10, 255, 0, 1),
            peer_asn: 65000,
            hold_time: 90,
            capabilities: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        let feeder = Feeder::run(
            TcpStream::connect(addr).unwrap(),
            &session,
            feed.clone(),
            deadline,
        )
        .unwrap();
        let sent = crate::wait_until(Duration::from_secs(20), Duration::from_millis(5), || {
            Ok(feeder.sent_at().is_some())
        });
        assert!(sent.is_ok(), "the feed was not sent");
        assert!(feeder.sent_at().unwrap() >= feeder.established_at());
        feeder.check().unwrap();
        feeder.die().unwrap();
        let (routes, eor) = receiver.join().unwrap();
        assert_eq!(routes, 50_000);
        assert!(eor, "no End-of-RIB");
    }

    #[test]
    fn a_receiver_of_the_wrong_as_is_refused() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let _receiver = std::thread::spawn(move || {
            let _ = std::panic::catch_unwind(|| fake_receiver(listener, 65001));
        });
        let session = SessionSpec {
            asn: 4_200_000_100,
            router_id: Ipv4Addr::new(10, 255, 0, 1),
            peer_asn: 65000,
            hold_time: 90,
            capabilities: Vec::new(),
        };
        let feed = Arc::new(Feed::encode(&spec(10)).unwrap());
        let err = Feeder::run(
            TcpStream::connect(addr).unwrap(),
            &session,
            feed,
            Instant::now() + Duration::from_secs(10),
        )
        .err()
        .expect("a wrong AS must fail");
        assert!(err.to_string().contains("AS 65001"), "{err:#}");
    }

    #[test]
    fn the_sink_reads_everything() {
        let feed = Feed::encode(&spec(20_000)).unwrap();
        assert!(sink_time(&feed).unwrap() > Duration::ZERO);
    }
}
