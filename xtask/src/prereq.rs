//! What the build, the run and the tests need on the machine, how to tell whether it is
//! there (quickly: `cargo xtask setup` must be a fast no-op when nothing is missing),
//! and how setup installs it.

use std::{path::Path, process::Command};

/// rustup name of the toolchain that builds the eBPF object, from `XDP_FWD_TOOLCHAIN`
/// (`.cargo/config.toml` sets the default, the environment overrides it).
pub fn toolchain() -> String {
    std::env::var("XDP_FWD_TOOLCHAIN").unwrap_or_else(|_| DEBIAN_TOOLCHAIN.to_owned())
}

/// The name under which setup links Debian's rustc/cargo (at /usr) into rustup.
pub const DEBIAN_TOOLCHAIN: &str = "debian";

/// Debian packages the build needs: Debian's rustc 1.96 with its library source (the
/// eBPF toolchain), and LLVM 22 for bpf-linker.
const BUILD_PACKAGES: &[&str] = &[
    "rustc-web",
    "cargo-web",
    "rust-web-src",
    "llvm-22-dev",
    "libpolly-22-dev",
    "libzstd-dev",
];

/// Debian packages that run and test the dataplane and the speaker.
const RUN_PACKAGES: &[&str] = &[
    "bpftool",
    "iproute2",
    "iputils-ping",
    "ethtool",
    "nftables",
    "iperf3",
    "tcpdump",
    "frr",
    "bird2",
    // The packaging tests: `systemd-analyze verify` (which runs `man` for the unit's
    // Documentation=), a venv for kubernetes-validate, the unit's sandbox checked with
    // setpriv (util-linux) and strace.
    "systemd",
    "man-db",
    "python3-venv",
    "strace",
];

/// Debian packages the benchmarks need besides those: the kernel's `xdp_fwd` sample,
/// built from Debian's kernel source with clang against libbpf.
const BENCH_PACKAGES: &[&str] = &["linux-source-6.1", "clang", "libbpf-dev"];

/// bpf-linker, built against Debian's LLVM 22 (the LLVM of Debian's rustc).
pub const BPF_LINKER_VERSION: &str = "0.13.0";

/// cargo-deb, which `cargo xtask dist` packages with (3.8.0 builds with Rust 1.85+).
pub const CARGO_DEB_VERSION: &str = "3.8.0";
/// cargo-fuzz, which runs the wire codec's fuzz target (bgp-wire/fuzz).
pub const CARGO_FUZZ_VERSION: &str = "0.13.2";

/// What one piece of the machine lacks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Missing {
    /// Debian packages not installed.
    Packages(Vec<String>),
    /// The rustup toolchain, or its library source.
    Toolchain(String),
    /// bpf-linker not on PATH.
    BpfLinker,
    /// No bpffs at /sys/fs/bpf.
    Bpffs,
    /// cargo-deb not installed (`cargo xtask dist`).
    CargoDeb,
    /// kubernetes-validate not in the tools venv (the DaemonSet test).
    KubernetesValidate,
    /// System services of BGP daemons that would hold port 179 in the root namespace
    /// (apt enables them; the tests run their own instances in namespaces).
    PeerServices(Vec<String>),
    /// cargo-fuzz not installed.
    CargoFuzz,
}

impl std::fmt::Display for Missing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Packages(p) => write!(f, "Debian packages {}", p.join(" ")),
            Self::Toolchain(t) => write!(f, "rust toolchain `{t}` with its library source"),
            Self::BpfLinker => write!(f, "bpf-linker"),
            Self::Bpffs => write!(f, "bpffs mounted at /sys/fs/bpf"),
            Self::CargoDeb => write!(f, "cargo-deb"),
            Self::KubernetesValidate => {
                write!(f, "kubernetes-validate in {}", lab::dist::TOOLS_VENV)
            }
            Self::PeerServices(s) => write!(f, "stopped and disabled services {}", s.join(" ")),
            Self::CargoFuzz => write!(f, "cargo-fuzz"),
        }
    }
}

/// How much of the machine a command needs.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Compile everything.
    Build,
    /// Compile and package (`cargo xtask dist`): also cargo-deb.
    Dist,
    /// Compile, run and test: also the peers, tools and bpffs.
    Everything,
    /// All of that and the benchmarks' baselines; what `cargo xtask setup` installs.
    Bench,
}

/// Everything missing for `need`, fastest checks first.
pub fn missing(need: Need) -> Vec<Missing> {
    let mut out = Vec::new();
    let mut absent = missing_packages(BUILD_PACKAGES);
    if need != Need::Build {
        absent.extend(missing_packages(RUN_PACKAGES));
    }
    if need == Need::Bench {
        absent.extend(missing_packages(BENCH_PACKAGES));
    }
    if !absent.is_empty() {
        out.push(Missing::Packages(absent));
    }
    let tc = toolchain();
    if !toolchain_ready(&tc) {
        out.push(Missing::Toolchain(tc));
    }
    if !succeeds("bpf-linker", &["--version"]) {
        out.push(Missing::BpfLinker);
    }
    if need != Need::Build && !bpffs_mounted() {
        out.push(Missing::Bpffs);
    }
    if need != Need::Build && !succeeds("cargo", &["deb", "--version"]) {
        out.push(Missing::CargoDeb);
    }
    let full = matches!(need, Need::Everything | Need::Bench);
    if full && !kubernetes_validate_ready() {
        out.push(Missing::KubernetesValidate);
    }
    if full {
        let on = services_on(
            Path::new("/run/systemd/system").exists(),
            |s| succeeds("systemctl", &["is-active", "--quiet", s]),
            |s| succeeds("systemctl", &["is-enabled", "--quiet", s]),
        );
        if !on.is_empty() {
            out.push(Missing::PeerServices(on));
        }
    }
    if need != Need::Build && !succeeds("cargo", &["fuzz", "--version"]) {
        out.push(Missing::CargoFuzz);
    }
    out
}

/// System services of the test peers that apt may enable.
pub const PEER_SERVICES: &[&str] = &["frr", "bird"];

/// The peer services that are active or enabled; none unless systemd runs (without it
/// apt's services never start).
fn services_on(
    systemd: bool,
    active: impl Fn(&str) -> bool,
    enabled: impl Fn(&str) -> bool,
) -> Vec<String> {
    if !systemd {
        return Vec::new();
    }
    PEER_SERVICES
        .iter()
        .filter(|s| active(s) || enabled(s))
        .map(|s| (*s).to_owned())
        .collect()
}

/// The one-line error for what is missing.
pub fn one_line(missing: &[Missing]) -> String {
    let what: Vec<String> = missing.iter().map(ToString::to_string).collect();
    format!(
        "missing {}: run `cargo xtask setup` (as root)",
        what.join(", ")
    )
}

fn missing_packages(pkgs: &[&str]) -> Vec<String> {
    let out = Command::new("dpkg-query")
        .args(["-W", "-f", "${Package} ${db:Status-Abbrev}\n"])
        .args(pkgs)
        .output();
    let installed: Vec<String> = match out {
        Ok(o) => String::from_utf8_lossy(&o.stdout)
            .lines()
            .filter(|l| l.split_whitespace().nth(1) == Some("ii"))
            .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
            .collect(),
        Err(_) => Vec::new(),
    };
    pkgs.iter()
        .filter(|p| !installed.iter().any(|i| i == *p))
        .map(|p| (*p).to_owned())
        .collect()
}

/// The toolchain runs and has the library source `-Z build-std=core` compiles.
pub fn toolchain_ready(tc: &str) -> bool {
    let Ok(out) = Command::new("rustup")
        .args(["run", tc, "rustc", "--print", "sysroot"])
        .output()
    else {
        return false;
    };
    if !out.status.success() {
        return false;
    }
    let sysroot = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    Path::new(&sysroot)
        .join("lib/rustlib/src/rust/library/core/Cargo.toml")
        .exists()
}

/// The venv's kubernetes-validate runs and is the pinned version.
fn kubernetes_validate_ready() -> bool {
    Command::new(lab::dist::kubernetes_validate())
        .arg("--version")
        .output()
        .is_ok_and(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout)
                    .contains(lab::dist::KUBERNETES_VALIDATE_VERSION)
        })
}

pub fn bpffs_mounted() -> bool {
    std::fs::read_to_string("/proc/mounts").is_ok_and(|m| {
        m.lines().any(|l| {
            let mut f = l.split_whitespace().skip(1);
            f.next() == Some("/sys/fs/bpf") && f.next() == Some("bpf")
        })
    })
}

pub fn succeeds(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .output()
        .is_ok_and(|o| o.status.success())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_error_is_one_line_naming_what_and_the_fix() {
        let msg = one_line(&[Missing::BpfLinker, Missing::Bpffs]);
        assert!(!msg.contains('\n'));
        assert!(msg.contains("bpf-linker"), "{msg}");
        assert!(msg.contains("bpffs"), "{msg}");
        assert!(msg.contains("cargo xtask setup"), "{msg}");
    }

    #[test]
    fn an_unknown_toolchain_is_not_ready() {
        assert!(!toolchain_ready("no-such-toolchain-xyz"));
    }

    #[test]
    fn peer_services_matter_only_under_systemd() {
        assert!(services_on(false, |_| true, |_| true).is_empty());
        assert_eq!(
            services_on(true, |s| s == "bird", |_| false),
            vec!["bird".to_owned()]
        );
        assert_eq!(
            services_on(true, |_| false, |s| s == "frr"),
            vec!["frr".to_owned()]
        );
        assert!(services_on(true, |_| false, |_| false).is_empty());
    }

    #[test]
    fn an_absent_package_is_reported() {
        let absent = missing_packages(&["no-such-package-xyz"]);
        assert_eq!(absent, vec!["no-such-package-xyz".to_owned()]);
    }
}
