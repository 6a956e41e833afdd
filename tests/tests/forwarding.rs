//! Forwarding through namespaces: source -> router -> sink, where the router's kernel does
//! not forward (ip_forward=0) and has no route to either side's pod prefix, so only the
//! XDP program can deliver. UDP, TCP (iperf3) and ping, in skb and driver mode, with the
//! counters matching what was sent.

mod support;

use std::{net::UdpSocket, time::Duration};

use bgp_ctl::fib::{AttachMode, FibMaps};
use support::topology;

fn forwards_udp_tcp_and_ping(mode: AttachMode) -> anyhow::Result<()> {
    let t = topology(mode)?;
    let routes = t.router.ip(&["route", "show", "table", "all"])?;
    assert!(
        !routes.contains("10.244."),
        "the router's kernel must not know the pod prefixes:\n{routes}"
    );
    let counters = || FibMaps::open(t.pins.path())?.counters();
    // Resolve the source's and the sink's gateway first: a kernel queues only a few
    // packets while ARP is pending, and this test counts every datagram.
    t.source
        .exec("ping", &["-c", "1", "-W", "2", "192.0.2.254"])?;
    t.sink
        .exec("ping", &["-c", "1", "-W", "2", "198.51.100.254"])?;

    // UDP: every datagram arrives, and each was forwarded by the program.
    const N: u32 = 1000;
    let rx = t.sink.enter(|| -> anyhow::Result<UdpSocket> {
        let s = UdpSocket::bind("10.244.9.1:5001")?;
        s.set_read_timeout(Some(Duration::from_secs(2)))?;
        Ok(s)
    })??;
    let before = counters()?;
    let reader = std::thread::spawn(move || {
        let mut got = vec![false; N as usize];
        let mut buf = [0u8; 16];
        while let Ok(n) = rx.recv(&mut buf) {
            if n == 4 {
                let i = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
                if let Some(g) = got.get_mut(i) {
                    *g = true;
                }
            }
            if got.iter().all(|&g| g) {
                break;
            }
        }
        got
    });
    t.source.enter(|| -> anyhow::Result<()> {
        let s = UdpSocket::bind("10.244.8.1:0")?;
        for i in 0..N {
            s.send_to(&i.to_be_bytes(), "10.244.9.1:5001")?;
            if i % 50 == 49 {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        Ok(())
    })??;
    let got = reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader panicked"))?;
    let after = counters()?;
    let received = got.iter().filter(|&&g| g).count() as u32;
    assert_eq!(
        received,
        N,
        "UDP datagrams received by the sink ({mode}); counters {before:?} -> {after:?}; sink: {}",
        t.sink.ip(&["-s", "link", "show", "s0"])?
    );
    assert_eq!(
        after.forwarded - before.forwarded,
        u64::from(N),
        "forwarded counter ({mode}): {before:?} -> {after:?}"
    );

    // ping, both directions through the program.
    let before = counters()?;
    t.source.exec(
        "ping",
        &[
            "-c",
            "20",
            "-i",
            "0.01",
            "-W",
            "2",
            "-I",
            "10.244.8.1",
            "10.244.9.1",
        ],
    )?;
    let after = counters()?;
    assert!(
        after.forwarded - before.forwarded >= 40,
        "20 echo requests and 20 replies forwarded ({mode}): {before:?} -> {after:?}"
    );

    // TCP, a bulk transfer with iperf3.
    t.sink.exec(
        "iperf3",
        &["-s", "-1", "-D", "-B", "10.244.9.1", "-p", "5201"],
    )?;
    std::thread::sleep(Duration::from_millis(300));
    let out = t.source.exec(
        "iperf3",
        &[
            "-c",
            "10.244.9.1",
            "-B",
            "10.244.8.1",
            "-p",
            "5201",
            "-t",
            "2",
            "-J",
        ],
    )?;
    let bytes: f64 = out
        .split("\"sum_received\":")
        .nth(1)
        .and_then(|s| s.split("\"bytes\":").nth(1))
        .and_then(|s| s.split(',').next())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0.0);
    assert!(bytes > 1e6, "iperf3 moved {bytes} bytes over TCP ({mode})");
    let stats = counters()?;
    assert_eq!(stats.drop_blackhole, 0);
    Ok(())
}

#[test]
fn forwards_in_skb_mode() -> anyhow::Result<()> {
    forwards_udp_tcp_and_ping(AttachMode::Skb)
}

#[test]
fn forwards_in_driver_mode() -> anyhow::Result<()> {
    forwards_udp_tcp_and_ping(AttachMode::Driver)
}
