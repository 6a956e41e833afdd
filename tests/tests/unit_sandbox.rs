//! The systemd unit's sandbox against the real binary: its capability bounding set is
//! enough for the dataplane's whole cycle and each capability in it is needed; every
//! system call that cycle makes passes its `SystemCallFilter=`, `MemoryDenyWriteExecute=`
//! and `RestrictAddressFamilies=`; and the daemon, against FRR, runs under them.

mod support;

use std::{collections::BTreeSet, path::PathBuf, process::Output, time::Duration};

use anyhow::{Context, Result, ensure};
use lab::{Netns, PinDir, agent::Agent, configs, frr::Frr, wait_until};
use support::bgp_ctl_bin;

fn unit() -> Result<String> {
    let path = lab::dist::workspace_root().join("packaging/bgp-ctl.service");
    std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
}

/// The words of every `key=` line of the unit.
fn unit_values(key: &str) -> Result<Vec<String>> {
    let prefix = format!("{key}=");
    Ok(unit()?
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .flat_map(|v| v.split_whitespace().map(str::to_owned))
        .collect())
}

/// `setpriv --bounding-set` form of capability names: `CAP_BPF` -> `bpf`.
fn setpriv_caps(caps: &[String]) -> String {
    let mut s = String::from("-all");
    for c in caps {
        s.push_str(",+");
        s.push_str(&c.trim_start_matches("CAP_").to_lowercase());
    }
    s
}

/// A namespace with one veth end (`up0`) to attach to, and a pin directory.
struct Lab {
    ns: Netns,
    _peer: Netns,
    pins: PinDir,
    bin: PathBuf,
}

impl Lab {
    fn new() -> Result<Self> {
        lab::require_root()?;
        lab::sweep_stale();
        let (ns, peer) = (Netns::new()?, Netns::new()?);
        lab::veth(&ns, "up0", &peer, "up1")?;
        Ok(Self {
            ns,
            _peer: peer,
            pins: PinDir::new()?,
            bin: bgp_ctl_bin()?,
        })
    }

    /// Runs `prefix... bgp-ctl args...` in the namespace (root bpffs stays visible).
    fn bgp_ctl(&self, prefix: &[&str], args: &[&str]) -> Result<Output> {
        let netns = format!("--net=/run/netns/{}", self.ns.name());
        let bin = self.bin.to_str().context("path")?;
        let mut argv: Vec<&str> = vec![&netns];
        argv.extend_from_slice(prefix);
        argv.push(bin);
        argv.extend_from_slice(args);
        lab::output("nsenter", &argv)
    }

    /// attach (twice: the second adopts the pins and swaps the program), stats,
    /// detach, detach --all, each under `prefix`; the first failure's stderr.
    fn cycle(&self, prefix: &[&str]) -> Result<Result<(), String>> {
        let pins = self.pins.path().to_str().context("path")?;
        let steps: [&[&str]; 5] = [
            &[
                "dataplane",
                "attach",
                "--iface",
                "up0",
                "--mode",
                "skb",
                "--pin-dir",
                pins,
            ],
            &[
                "dataplane",
                "attach",
                "--iface",
                "up0",
                "--mode",
                "skb",
                "--pin-dir",
                pins,
            ],
            &["dataplane", "stats", "--pin-dir", pins],
            &["dataplane", "detach", "--iface", "up0", "--pin-dir", pins],
            &["dataplane", "detach", "--all", "--pin-dir", pins],
        ];
        for args in steps {
            let out = self.bgp_ctl(prefix, args)?;
            if !out.status.success() {
                return Ok(Err(format!(
                    "`bgp-ctl {}`: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr).trim()
                )));
            }
        }
        Ok(Ok(()))
    }
}

#[test]
fn the_units_capabilities_suffice_and_each_is_needed() -> Result<()> {
    let caps = unit_values("CapabilityBoundingSet")?;
    ensure!(!caps.is_empty(), "no CapabilityBoundingSet= in the unit");
    let lab = Lab::new()?;
    let run_with = |caps: &[String]| -> Result<Result<(), String>> {
        let bounding = format!("--bounding-set={}", setpriv_caps(caps));
        lab.cycle(&["setpriv", &bounding, "--inh-caps=-all", "--"])
    };
    if let Err(e) = run_with(&caps)? {
        panic!("with the unit's capabilities {caps:?}: {e}");
    }
    for missing in &caps {
        let fewer: Vec<String> = caps.iter().filter(|c| *c != missing).cloned().collect();
        let outcome = if missing == "CAP_NET_BIND_SERVICE" {
            // The dataplane binds nothing; the speaker binds TCP port 179.
            if let Err(e) = bind_179(&lab, &caps)? {
                panic!("binding port 179 with the unit's capabilities {caps:?}: {e}");
            }
            bind_179(&lab, &fewer)?
        } else {
            run_with(&fewer)?
        };
        assert!(
            outcome.is_err(),
            "{missing} is in the unit but everything works without it"
        );
    }
    Ok(())
}

/// Binds TCP port 179 in the lab namespace with only `caps`.
fn bind_179(lab: &Lab, caps: &[String]) -> Result<Result<(), String>> {
    let netns = format!("--net=/run/netns/{}", lab.ns.name());
    let bounding = format!("--bounding-set={}", setpriv_caps(caps));
    let out = lab::output(
        "nsenter",
        &[
            &netns,
            "setpriv",
            &bounding,
            "--inh-caps=-all",
            "--",
            "python3",
            "-c",
            "import socket; s = socket.socket(); s.bind(('127.0.0.1', 179))",
        ],
    )?;
    Ok(if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    })
}

/// Every name `SystemCallFilter=` allows, groups expanded by systemd-analyze.
fn allowed_syscalls() -> Result<BTreeSet<String>> {
    fn expand(name: &str, out: &mut BTreeSet<String>) -> Result<()> {
        if !name.starts_with('@') {
            out.insert(name.to_owned());
            return Ok(());
        }
        let list = lab::run("systemd-analyze", &["syscall-filter", name])?;
        for entry in list.lines().skip(1).map(str::trim) {
            if entry.is_empty() || entry.starts_with('#') {
                continue;
            }
            expand(entry, out)?;
        }
        Ok(())
    }
    let mut allowed = BTreeSet::new();
    let filter = unit_values("SystemCallFilter")?;
    ensure!(!filter.is_empty(), "no SystemCallFilter= in the unit");
    ensure!(
        !filter.iter().any(|f| f.starts_with('~')),
        "a deny list in SystemCallFilter=: extend this test"
    );
    for name in &filter {
        expand(name, &mut allowed)?;
    }
    Ok(allowed)
}

#[test]
fn every_syscall_of_the_dataplane_cycle_passes_the_units_filter() -> Result<()> {
    let lab = Lab::new()?;
    let trace = tempfile::NamedTempFile::new()?;
    let trace_path = trace.path().to_str().context("path")?;
    // -f: every thread, in one file (with their pids); -A: the five runs append.
    let result = lab.cycle(&["strace", "-f", "-qq", "-o", trace_path, "-A"])?;
    if let Err(e) = result {
        panic!("the cycle failed under strace: {e}");
    }
    let used = check_trace(&std::fs::read_to_string(trace.path())?)?;
    assert!(used.contains("bpf"), "strace saw the bpf calls: {used:?}");
    Ok(())
}

/// Checks an `strace -f` log against the unit's `SystemCallFilter=`,
/// `MemoryDenyWriteExecute=` and `RestrictAddressFamilies=`; returns the calls made.
fn check_trace(text: &str) -> Result<BTreeSet<String>> {
    let allowed = allowed_syscalls()?;
    ensure!(
        allowed.contains("bpf") && allowed.contains("read"),
        "{allowed:?}"
    );
    let used: BTreeSet<String> = text
        .lines()
        .filter_map(|l| {
            // "<pid> name(args) = ret"; "<pid> <... name resumed>" repeats a name.
            let call = l.split_whitespace().nth(1)?;
            let name = call.split('(').next()?;
            (!name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
            .then(|| name.to_owned())
        })
        .collect();
    let denied: Vec<&String> = used.difference(&allowed).collect();
    assert!(
        denied.is_empty(),
        "SystemCallFilter= of the unit would refuse {denied:?} (used: {used:?})"
    );

    // MemoryDenyWriteExecute=yes refuses writable+executable mappings and making
    // memory executable later; the BPF JIT writes its code in the kernel, not here.
    if unit_values("MemoryDenyWriteExecute")? == ["yes"] {
        for line in text.lines() {
            let wx = line.contains("mmap(") && line.contains("PROT_WRITE|PROT_EXEC");
            let mx = line.contains("mprotect(") && line.contains("PROT_EXEC");
            assert!(
                !wx && !mx,
                "MemoryDenyWriteExecute=yes would refuse: {line}"
            );
        }
    }
    // RestrictAddressFamilies= lists every family a socket is opened of.
    let families = unit_values("RestrictAddressFamilies")?;
    for line in text.lines().filter(|l| l.contains(" socket(")) {
        let family = line
            .split("socket(")
            .nth(1)
            .and_then(|rest| rest.split(',').next())
            .unwrap_or_default();
        assert!(
            families.iter().any(|f| f == family),
            "RestrictAddressFamilies={families:?} would refuse: {line}"
        );
    }
    Ok(used)
}

/// The daemon itself in the unit's sandbox, against FRR (with TCP MD5): with only the
/// unit's capabilities it binds port 179, attaches the dataplane, comes up with the
/// leaf, programs the leaf's route and reports ready; every call it makes on the way,
/// and on SIGTERM, passes the unit's filters.
#[test]
fn the_daemon_runs_in_the_units_sandbox() -> Result<()> {
    lab::require_root()?;
    lab::require_bpffs()?;
    lab::sweep_stale();
    let caps = unit_values("CapabilityBoundingSet")?;
    let (node, leaf) = (Netns::new()?, Netns::new()?);
    lab::veth(&node, "n0", &leaf, "l0")?;
    node.ip(&["addr", "add", "192.0.2.11/24", "dev", "n0"])?;
    leaf.ip(&["addr", "add", "192.0.2.1/24", "dev", "l0"])?;
    let frr = Frr::start(
        &leaf,
        &configs::frr_leaf(
            "leaf",
            65001,
            "192.0.2.11",
            4_200_000_001,
            " neighbor 192.0.2.11 password s3cret\n\
             address-family ipv4 unicast\n  network 100.64.1.0/24\n exit-address-family\n",
        ),
    )?;
    let secrets = tempfile::tempdir()?;
    let password = secrets.path().join("leaf1.password");
    std::fs::write(&password, "s3cret\n")?;
    let trace = tempfile::NamedTempFile::new()?;
    let bounding = format!("--bounding-set={}", setpriv_caps(&caps));
    let trace_path = trace.path().to_str().context("path")?;
    let config = configs::node_config(
        4_200_000_001,
        &["n0"],
        &format!(
            r#"
[origination]
static-routes = ["10.244.1.0/24"]
[[peer]]
name = "leaf1"
address = "192.0.2.1"
remote-asn = 65001
password-file = "{}"
import = "accept-all"
export = "accept-all"
"#,
            password.display()
        ),
    );
    let wrapper = [
        "setpriv",
        &bounding,
        "--inh-caps=-all",
        "--",
        "strace",
        "-f",
        "-qq",
        "-o",
        trace_path,
    ];
    let mut agent = Agent::start_wrapped(&node, &config, &wrapper)?;
    agent.wait_established("leaf1", Duration::from_secs(60))?;
    frr.wait_established("192.0.2.11", Duration::from_secs(30))?;
    wait_until(Duration::from_secs(30), Duration::from_millis(100), || {
        Ok(agent
            .request(&["show", "fib"])?
            .iter()
            .any(|r| r.to_string().contains("100.64.1.0/24")))
    })
    .with_context(|| format!("the leaf's route in our FIB; log:\n{}", agent.log()))?;
    let health = agent.table(&["health"])?;
    assert!(health.starts_with("ready"), "{health}");

    // SIGTERM to the daemon (strace's child): it exits, and strace with it.
    let strace_pid = agent.pid().context("no daemon process")?;
    let children =
        std::fs::read_to_string(format!("/proc/{strace_pid}/task/{strace_pid}/children"))?;
    let daemon: i32 = children
        .split_whitespace()
        .next()
        .context("strace has no child")?
        .parse()?;
    // SAFETY: kill(2) on the pid of our own grandchild.
    unsafe { libc::kill(daemon, libc::SIGTERM) };
    wait_until(Duration::from_secs(20), Duration::from_millis(100), || {
        Ok(!std::path::Path::new(&format!("/proc/{daemon}")).exists())
    })
    .context("the daemon did not exit on SIGTERM")?;
    agent.kill()?;

    let text = std::fs::read_to_string(trace.path())?;
    let used = check_trace(&text)?;
    for call in ["bpf", "bind", "setsockopt", "epoll_wait"] {
        assert!(
            used.contains(call),
            "the daemon made no {call} call: {used:?}"
        );
    }
    assert!(
        text.contains("TCP_MD5SIG"),
        "the daemon set a TCP MD5 key under the unit's capabilities"
    );
    Ok(())
}
