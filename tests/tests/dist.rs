//! The Debian package of `cargo xtask dist` (which `cargo xtask test` builds before the
//! tests run): what it holds, and that it installs, verifies, removes and purges cleanly
//! in a throwaway root, leaving the pinned dataplane alone unless asked.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use anyhow::{Context, Result, bail, ensure};

/// Every file the package must hold (`dpkg-deb -c` paths).
const FILES: &[&str] = &[
    "./usr/bin/bgp-ctl",
    "./lib/systemd/system/bgp-ctl.service",
    "./etc/bgp-ctl/bgp-ctl.toml",
    "./usr/share/man/man1/bgp-ctl.1.gz",
    "./usr/share/man/man1/bgp-ctl-dataplane.1.gz",
    "./usr/share/man/man1/bgp-ctl-dataplane-attach.1.gz",
    "./usr/share/bash-completion/completions/bgp-ctl",
    "./usr/share/zsh/vendor-completions/_bgp-ctl",
    "./usr/share/fish/vendor_completions.d/bgp-ctl.fish",
];

const PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn deb() -> Result<PathBuf> {
    lab::dist::dist_deb()
}

fn checked(what: &str, out: Output) -> Result<String> {
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn the_package_lists_every_file() -> Result<()> {
    let deb = deb()?;
    let listing = lab::run("dpkg-deb", &["-c", deb.to_str().context("path")?])?;
    let paths: Vec<&str> = listing
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .collect();
    for f in FILES {
        assert!(
            paths.contains(f),
            "{} lacks {f}; it holds:\n{listing}",
            deb.display()
        );
    }
    // The binary is executable, everything else is not.
    for line in listing.lines() {
        let (Some(mode), Some(path)) = (
            line.split_whitespace().next(),
            line.split_whitespace().nth(5),
        ) else {
            continue;
        };
        if mode.starts_with('-') {
            let exec = mode.contains('x');
            assert_eq!(exec, path == "./usr/bin/bgp-ctl", "{line}");
        }
    }
    // The example configuration is a conffile: upgrades keep the operator's edits.
    let conffiles = lab::run(
        "dpkg-deb",
        &["--info", deb.to_str().context("path")?, "conffiles"],
    )?;
    assert_eq!(conffiles.trim(), "/etc/bgp-ctl/bgp-ctl.toml");
    let fields = lab::run(
        "dpkg-deb",
        &[
            "--field",
            deb.to_str().context("path")?,
            "Package",
            "Depends",
        ],
    )?;
    assert!(fields.contains("Package: bgp-ctl"), "{fields}");
    assert!(
        fields.contains("libc6"),
        "shared-library dependencies: {fields}"
    );
    Ok(())
}

/// A throwaway dpkg root: the host's package database (so that the package's
/// dependencies count as installed) and systemd's own units (for `systemd-analyze
/// verify --root`); maintainer scripts run chrootless with `DPKG_ROOT` set.
struct Root {
    dir: tempfile::TempDir,
}

impl Root {
    fn new() -> Result<Self> {
        let dir = tempfile::Builder::new().prefix("bgp-ctl-dpkg").tempdir()?;
        let admin = dir.path().join("var/lib/dpkg");
        for sub in ["info", "updates", "triggers"] {
            std::fs::create_dir_all(admin.join(sub))?;
        }
        std::fs::copy("/var/lib/dpkg/status", admin.join("status"))
            .context("copying the host's dpkg status")?;
        std::fs::write(admin.join("available"), "")?;
        std::fs::create_dir_all(dir.path().join("lib/systemd"))?;
        lab::run(
            "cp",
            &[
                "-a",
                "/lib/systemd/system",
                dir.path().join("lib/systemd/").to_str().context("path")?,
            ],
        )?;
        Ok(Self { dir })
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    fn join(&self, p: &str) -> PathBuf {
        self.path().join(p.trim_start_matches('/'))
    }

    /// `dpkg --root=<root> args...`, with extra environment.
    fn dpkg(&self, args: &[&str], env: &[(&str, &str)]) -> Result<String> {
        let root = self.path().to_str().context("path")?;
        let log = self.join("dpkg.log");
        let out = Command::new("dpkg")
            .arg(format!("--root={root}"))
            .arg(format!("--log={}", log.display()))
            .arg("--force-script-chrootless")
            .args(args)
            .env("PATH", PATH)
            .envs(env.iter().copied())
            .output()
            .context("running dpkg")?;
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let stdout = checked(&format!("dpkg {}", args.join(" ")), out)?;
        Ok(stdout + &stderr)
    }

    fn status(&self) -> Result<String> {
        let root = self.path().to_str().context("path")?;
        let out = Command::new("dpkg-query")
            .arg(format!("--root={root}"))
            .args(["-W", "-f", "${db:Status-Status}", "bgp-ctl"])
            .output()?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

#[test]
fn installs_verifies_removes_and_purges_in_a_throwaway_root() -> Result<()> {
    lab::require_root()?;
    let deb = deb()?;
    let deb = deb.to_str().context("path")?;
    let root = Root::new()?;

    root.dpkg(&["--install", deb], &[])?;
    assert_eq!(root.status()?, "installed");
    for f in FILES {
        assert!(root.join(f).exists(), "installed {f}");
    }
    let bin = root.join("usr/bin/bgp-ctl");
    let bin = bin.to_str().context("path")?;
    let version = lab::run(bin, &["--version"])?;
    assert!(version.starts_with("bgp-ctl "), "{version}");
    // The packaged example configuration passes the packaged binary's check.
    let conf = root.join("etc/bgp-ctl/bgp-ctl.toml");
    let checked = lab::run(bin, &["config", "check", conf.to_str().context("path")?])?;
    assert!(checked.contains(": ok"), "{checked}");
    // postinst registered the unit with deb-systemd-helper, and enabled nothing.
    assert!(
        root.join("var/lib/systemd/deb-systemd-helper-enabled/bgp-ctl.service.dsh-also")
            .exists(),
        "postinst ran `deb-systemd-helper update-state`"
    );
    assert!(
        !root
            .join("etc/systemd/system/multi-user.target.wants/bgp-ctl.service")
            .exists(),
        "installing must not enable the unit"
    );

    // The installed unit verifies: its binary, its man page and systemd's units
    // are all in the root. No output at all, warnings included.
    let out = Command::new("systemd-analyze")
        .args(["verify", "--root"])
        .arg(root.path())
        .arg("bgp-ctl.service")
        .env("MANPATH", root.join("usr/share/man"))
        .output()
        .context("running systemd-analyze (`cargo xtask setup` installs systemd)")?;
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify ({}): {said}",
        out.status
    );

    // Reinstalling runs the upgrade path of the maintainer scripts, and keeps the
    // operator's edit of the conffile.
    let conf = root.join("etc/bgp-ctl/bgp-ctl.toml");
    let original = std::fs::read_to_string(&conf)?;
    let edited = original.replace("asn = 4200000001", "asn = 4200000002");
    assert_ne!(edited, original, "the example has the node's ASN");
    std::fs::write(&conf, &edited)?;
    root.dpkg(&["--install", deb], &[])?;
    assert_eq!(root.status()?, "installed");
    assert_eq!(
        std::fs::read_to_string(&conf)?,
        edited,
        "upgrade kept the edit"
    );

    // Remove: the files go, the conffile stays.
    root.dpkg(&["--remove", "bgp-ctl"], &[])?;
    assert_eq!(root.status()?, "config-files");
    assert!(!root.join("usr/bin/bgp-ctl").exists());
    assert!(!root.join("lib/systemd/system/bgp-ctl.service").exists());
    assert!(root.join("etc/bgp-ctl/bgp-ctl.toml").exists());

    // Purge with a pinned dataplane in the root's bpffs: it is left alone.
    let pins = root.join("sys/fs/bpf/xdp-fwd");
    std::fs::create_dir_all(&pins)?;
    std::fs::write(pins.join("link_eth0"), "")?;
    let said = root.dpkg(&["--purge", "bgp-ctl"], &[])?;
    assert_eq!(root.status()?, "");
    assert!(
        !root.join("etc/bgp-ctl/bgp-ctl.toml").exists(),
        "purge removes the conffile"
    );
    assert!(
        !root
            .join("var/lib/systemd/deb-systemd-helper-enabled/bgp-ctl.service.dsh-also")
            .exists(),
        "purge forgets the unit"
    );
    assert!(pins.join("link_eth0").exists(), "purge left the pins alone");
    assert!(said.contains("left the pinned dataplane"), "{said}");

    // Asked to, purge removes the pins too.
    root.dpkg(&["--install", deb], &[])?;
    let said = root.dpkg(&["--purge", "bgp-ctl"], &[("BGP_CTL_PURGE_PINS", "yes")])?;
    assert!(!pins.exists(), "BGP_CTL_PURGE_PINS=yes removes the pins");
    assert!(said.contains("removed the pinned dataplane"), "{said}");
    ensure!(root.status()?.is_empty(), "purged");
    Ok(())
}
