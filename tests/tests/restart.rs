//! Hitless restart: a steady flow through the router loses no packet while the process
//! that owns the dataplane is killed with SIGKILL and started again (which adopts the
//! pinned maps and swaps a freshly loaded program into the pinned links).

mod support;

use std::{
    collections::HashSet,
    io::{BufRead, BufReader},
    net::UdpSocket,
    process::{Child, Command, Stdio},
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::{Duration, Instant},
};

use bgp_ctl::fib::AttachMode;
use support::{bgp_ctl_bin, topology, xdp_prog_id};

/// The dataplane owner process; killed on drop so a failing test leaves nothing behind.
struct Owner(Child);

impl Owner {
    fn start(router: &str, pins: &str, mode: AttachMode) -> anyhow::Result<Self> {
        let bin = bgp_ctl_bin()?;
        let mut child = Command::new("nsenter")
            .arg(format!("--net=/run/netns/{router}"))
            .arg(bin)
            .args(["dataplane", "attach", "--iface", "r0", "--iface", "r1"])
            .args([
                "--mode",
                &mode.to_string(),
                "--pin-dir",
                pins,
                "--foreground",
            ])
            .stdout(Stdio::piped())
            .spawn()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
        let owner = Self(child);
        anyhow::ensure!(line.contains("attached"), "owner did not start: {line:?}");
        Ok(owner)
    }
}

impl Drop for Owner {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn restart_loses_nothing(mode: AttachMode) -> anyhow::Result<()> {
    let t = topology(mode)?;
    t.source
        .exec("ping", &["-c", "1", "-W", "2", "192.0.2.254"])?;
    let pins = t.pins.path().to_str().expect("utf-8").to_owned();
    let mut owner = Owner::start(t.router.name(), &pins, mode)?;
    let prog_before = xdp_prog_id(&t.router, "r0")?;

    let rx = t.sink.enter(|| -> anyhow::Result<UdpSocket> {
        let s = UdpSocket::bind("10.244.9.1:5002")?;
        s.set_read_timeout(Some(Duration::from_millis(500)))?;
        Ok(s)
    })??;
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let done = done.clone();
        std::thread::spawn(move || {
            let mut seen = HashSet::new();
            let mut buf = [0u8; 16];
            loop {
                match rx.recv(&mut buf) {
                    Ok(4) => {
                        seen.insert(u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]));
                    }
                    Ok(_) => {}
                    Err(_) if done.load(Ordering::Relaxed) => break,
                    Err(_) => {}
                }
            }
            seen
        })
    };

    // ~10,000 packets/s for 3 s; the owner is killed and restarted after 1 s.
    let (sent, restarted_after) = std::thread::scope(|s| -> anyhow::Result<(u32, Duration)> {
        let sender = s.spawn(|| {
            t.source.enter(|| -> anyhow::Result<u32> {
                let sock = UdpSocket::bind("10.244.8.1:0")?;
                let start = Instant::now();
                let mut seq = 0u32;
                while start.elapsed() < Duration::from_secs(3) {
                    for _ in 0..10 {
                        sock.send_to(&seq.to_be_bytes(), "10.244.9.1:5002")?;
                        seq += 1;
                    }
                    std::thread::sleep(Duration::from_millis(1));
                }
                Ok(seq)
            })
        });
        std::thread::sleep(Duration::from_secs(1));
        let t0 = Instant::now();
        owner.0.kill()?; // SIGKILL
        owner.0.wait()?;
        owner = Owner::start(t.router.name(), &pins, mode)?;
        let restarted_after = t0.elapsed();
        let sent = sender
            .join()
            .map_err(|_| anyhow::anyhow!("sender panicked"))???;
        Ok((sent, restarted_after))
    })?;
    std::thread::sleep(Duration::from_millis(200));
    done.store(true, Ordering::Relaxed);
    let seen = reader
        .join()
        .map_err(|_| anyhow::anyhow!("reader panicked"))?;
    let lost: Vec<u32> = (0..sent).filter(|i| !seen.contains(i)).collect();
    println!(
        "{mode}: sent {sent}, lost {} across SIGKILL + restart ({restarted_after:?})",
        lost.len()
    );
    assert!(sent > 10_000, "the flow ran ({sent} packets)");
    assert!(
        lost.is_empty(),
        "lost {} packets, first {:?}",
        lost.len(),
        &lost[..lost.len().min(10)]
    );
    let prog_after = xdp_prog_id(&t.router, "r0")?;
    assert!(prog_after.is_some(), "still attached");
    assert_ne!(
        prog_before, prog_after,
        "the restart swapped in its own program"
    );
    drop(owner);
    Ok(())
}

#[test]
fn restart_in_skb_mode_loses_no_packet() -> anyhow::Result<()> {
    restart_loses_nothing(AttachMode::Skb)
}

#[test]
fn restart_in_driver_mode_loses_no_packet() -> anyhow::Result<()> {
    restart_loses_nothing(AttachMode::Driver)
}
