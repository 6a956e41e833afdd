//! Session throughput over loopback: a scripted peer sends a million IPv4 /32 routes
//! (packed UPDATEs) that our session frames, decodes and hands to a speaker that only
//! counts them; then the speaker sends a million through its `UpdateSender` and the
//! peer counts the bytes. With 4096-octet messages and with extended messages.
//!
//! `cargo bench -p bgp-ctl --bench session_throughput` (release). Prints figures;
//! asserts only that every route arrived, never on time.

use std::{
    net::Ipv4Addr,
    time::{Duration, Instant},
};

use bgp_ctl::bgp::{LocalInfo, PeerConfig, RemoteAs, Session, SessionEvent};
use bgp_wire::{
    AsPath, Capability, CodecContext, Family, Message, Open, PathAttributes, encode_updates,
    frame_length,
};
use bytes::BytesMut;
use ipnet::{IpNet, Ipv4Net};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::mpsc,
};

const ROUTES: u32 = 1_000_000;

fn prefixes() -> Vec<IpNet> {
    (0..ROUTES)
        .map(|i| IpNet::V4(Ipv4Net::new(Ipv4Addr::from(0x0A00_0000 + i), 32).unwrap()))
        .collect()
}

fn attrs() -> PathAttributes {
    PathAttributes {
        as_path: AsPath::from_sequence([65001, 65100]),
        next_hop: Some(Ipv4Addr::new(127, 0, 0, 2)),
        ..PathAttributes::default()
    }
}

async fn read_message(s: &mut TcpStream, buf: &mut BytesMut, ctx: &CodecContext) -> Message {
    loop {
        if let Some(n) = frame_length(buf, ctx).unwrap()
            && n <= buf.len()
        {
            let f = buf.split_to(n);
            return Message::decode(&f, ctx).unwrap();
        }
        assert!(s.read_buf(buf).await.unwrap() > 0, "closed");
    }
}

async fn run(extended: bool) {
    let listener = TcpListener::bind("127.0.0.2:0").await.unwrap();
    let mut c = PeerConfig::new("127.0.0.2".parse().unwrap(), RemoteAs::Exact(65001));
    c.port = listener.local_addr().unwrap().port();
    c.local_addr = Some("127.0.0.1".parse().unwrap());
    c.timers.hold_time = 90;
    c.timers.keepalive = 30;
    let local = LocalInfo {
        asn: 65000,
        router_id: Ipv4Addr::new(10, 0, 0, 1),
    };
    let (tx, mut events) = mpsc::channel(64);
    let handle = Session::spawn(c, local, tx, true).unwrap();
    let (mut s, _) = listener.accept().await.unwrap();
    let mut buf = BytesMut::new();
    let mut ctx = CodecContext::default();
    read_message(&mut s, &mut buf, &ctx).await;
    let mut caps = vec![Capability::MultiProtocol(Family::IPV4_UNICAST)];
    if extended {
        caps.push(Capability::ExtendedMessage);
    }
    let mut out = BytesMut::new();
    Message::Open(Open::new(65001, 90, Ipv4Addr::new(10, 0, 0, 2), caps))
        .encode(&ctx, &mut out)
        .unwrap();
    Message::Keepalive.encode(&ctx, &mut out).unwrap();
    s.write_all(&out).await.unwrap();
    ctx = CodecContext::new(true, extended, true);
    let sender = match events.recv().await.unwrap() {
        SessionEvent::Established { sender, .. } => sender,
        other => panic!("{other:?}"),
    };

    // Inbound: peer -> session -> speaker.
    let mut wire = BytesMut::new();
    let messages = encode_updates(
        &attrs(),
        Family::IPV4_UNICAST,
        None,
        &prefixes(),
        &ctx,
        &mut wire,
    )
    .unwrap();
    let bytes = wire.len();
    let (mut rd, mut wr) = s.into_split();
    let start = Instant::now();
    let writer = tokio::spawn(async move {
        wr.write_all(&wire).await.unwrap();
        wr
    });
    let mut got = 0usize;
    while got < ROUTES as usize {
        match events.recv().await.unwrap() {
            SessionEvent::Updates { updates, .. } => {
                got += updates.iter().map(|u| u.nlri.len()).sum::<usize>()
            }
            other => panic!("{other:?}"),
        }
    }
    let t_in = start.elapsed();
    let _wr = writer.await.unwrap();

    // Outbound: speaker -> session -> peer.
    let mut wire = BytesMut::new();
    encode_updates(
        &attrs(),
        Family::IPV4_UNICAST,
        None,
        &prefixes(),
        &sender.codec_context(),
        &mut wire,
    )
    .unwrap();
    let total = wire.len();
    let start = Instant::now();
    let feeder = tokio::spawn(async move {
        let mut wire = wire.freeze();
        while !wire.is_empty() {
            // Chunks of about 256 KiB on message boundaries, as a speaker would queue.
            let mut cut = 0;
            while cut < wire.len() && cut < 256 * 1024 {
                let len = usize::from(u16::from_be_bytes([wire[cut + 16], wire[cut + 17]]));
                cut += len;
            }
            sender.send_encoded(wire.split_to(cut)).await.unwrap();
        }
        sender
    });
    let mut received = 0usize;
    let mut scratch = vec![0u8; 1 << 20];
    // Keepalives may interleave: count at least `total` bytes.
    while received < total {
        received += rd.read(&mut scratch).await.unwrap();
    }
    let t_out = start.elapsed();
    let _sender = feeder.await.unwrap();

    let rate = |d: Duration| f64::from(ROUTES) / d.as_secs_f64() / 1e6;
    println!(
        "{} octets max: {messages} UPDATEs, {:.1} MB; in: {:.3} s ({:.2} M routes/s decoded and delivered); out: {:.3} s ({:.2} M routes/s)",
        ctx.max_message_len(),
        bytes as f64 / 1e6,
        t_in.as_secs_f64(),
        rate(t_in),
        t_out.as_secs_f64(),
        rate(t_out),
    );
    handle.shutdown().await;
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    for extended in [false, true] {
        for _ in 0..3 {
            rt.block_on(run(extended));
        }
    }
}
