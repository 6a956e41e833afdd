//! The kernel's own XDP forwarding sample, `samples/bpf/xdp_fwd` from Debian's
//! `linux-source-6.1` (`bpf_fib_lookup` + devmap redirect), built out of tree with clang
//! into `target/xdp-fwd-sample/` and reused while the kernel source package is unchanged.
//!
//! The small fixes it needs outside the kernel tree: `<uapi/linux/bpf.h>` resolves to the
//! system's `<linux/bpf.h>` through an `include/uapi` link; the kernel-internal types and
//! byte-order macros the object uses come from a prelude over libbpf's headers; libbpf
//! 1.0 and later only know `SEC("xdp")`, so both programs get that section and the loader
//! picks its program by function name instead of section name.

use std::{
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{Context, Result, bail};
use lab::Netns;

/// Debian's kernel source tarball (package `linux-source-6.1`).
pub const SOURCE_TARBALL: &str = "/usr/src/linux-source-6.1.tar.xz";
/// Where the sample sits in the tarball.
const SAMPLE_DIR: &str = "linux-source-6.1/samples/bpf";
/// libbpf's headers (package `libbpf-dev`).
const LIBBPF_HEADER: &str = "/usr/include/bpf/bpf_helpers.h";
/// The Debian packages the sample needs.
pub const PACKAGES: &str = "linux-source-6.1 clang libbpf-dev";

/// Kernel-internal names the object uses, from uapi and libbpf.
const PRELUDE: &str = "\
#include <linux/types.h>
#include <bpf/bpf_endian.h>
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
#define __force
#define htons(x) bpf_htons(x)
#define ntohs(x) bpf_ntohs(x)
#define cpu_to_be32(x) bpf_htonl(x)
#define memcpy __builtin_memcpy
#define AF_INET 2
#define AF_INET6 10
";

/// The built sample: its loader (`xdp_fwd`), which loads `xdp_fwd_kern.o` beside it.
pub struct KernelSample {
    loader: PathBuf,
}

impl KernelSample {
    /// Builds the sample under `dir`, or reuses the build if it is newer than the kernel
    /// source. Fails with one line naming the missing Debian packages.
    pub fn build(dir: &Path) -> Result<Self> {
        check_prerequisites()?;
        let loader = dir.join("xdp_fwd");
        let object = dir.join("xdp_fwd_kern.o");
        if newer_than_source(&loader)? && newer_than_source(&object)? {
            return Ok(Self { loader });
        }
        fs::create_dir_all(dir.join("include"))
            .with_context(|| format!("creating {}", dir.display()))?;
        let uapi = dir.join("include/uapi");
        if fs::symlink_metadata(&uapi).is_err() {
            std::os::unix::fs::symlink("/usr/include", &uapi)?;
        }
        let dir_s = dir.to_str().context("non-UTF-8 target directory")?;
        run(
            "tar",
            &[
                "-xJf",
                SOURCE_TARBALL,
                "-C",
                dir_s,
                "--strip-components=3",
                &format!("{SAMPLE_DIR}/xdp_fwd_kern.c"),
                &format!("{SAMPLE_DIR}/xdp_fwd_user.c"),
            ],
        )?;
        let kern = fs::read_to_string(dir.join("xdp_fwd_kern.c"))?;
        let kern = patch(
            &kern,
            &[
                ("SEC(\"xdp_fwd\")", "SEC(\"xdp\")"),
                ("SEC(\"xdp_fwd_direct\")", "SEC(\"xdp\")"),
            ],
        )?;
        fs::write(dir.join("kern.c"), kern)?;
        fs::write(dir.join("prelude.h"), PRELUDE)?;
        let user = fs::read_to_string(dir.join("xdp_fwd_user.c"))?;
        let user = patch(
            &user,
            &[(
                "sec_name = bpf_program__section_name(pos);\n\t\t\tif (sec_name && !strcmp(sec_name, prog_name)) {",
                "sec_name = bpf_program__name(pos);\n\t\t\tif (sec_name && !strncmp(sec_name, prog_name, strlen(prog_name)) &&\n\t\t\t    !strcmp(sec_name + strlen(prog_name), \"_prog\")) {",
            )],
        )?;
        fs::write(dir.join("user.c"), user)?;
        let multiarch = format!("/usr/include/{}-linux-gnu", std::env::consts::ARCH);
        run(
            "clang",
            &[
                "-O2",
                "-g",
                "-target",
                "bpf",
                "-Wno-compare-distinct-pointer-types",
                "-I",
                &format!("{dir_s}/include"),
                "-I",
                &multiarch,
                "-include",
                &format!("{dir_s}/prelude.h"),
                "-c",
                &format!("{dir_s}/kern.c"),
                "-o",
                object.to_str().context("path")?,
            ],
        )?;
        run(
            "clang",
            &[
                "-O2",
                &format!("{dir_s}/user.c"),
                "-o",
                loader.to_str().context("path")?,
                "-lbpf",
            ],
        )?;
        Ok(Self { loader })
    }

    /// Attaches the sample to `devs` in `ns` (driver mode, or skb with `skb`) and makes
    /// each of them a redirect target, as `xdp_fwd <devs>` does.
    pub fn attach(&self, ns: &Netns, devs: &[&str], skb: bool) -> Result<()> {
        let netns = format!("--net=/run/netns/{}", ns.name());
        let loader = self.loader.to_str().context("path")?;
        let mut args = vec![netns.as_str(), loader];
        if skb {
            args.push("-S");
        }
        args.extend_from_slice(devs);
        run("nsenter", &args)
    }

    /// Detaches whatever XDP program (native or generic) is attached through netlink to
    /// `devs` in `ns`.
    pub fn detach(ns: &Netns, devs: &[&str]) -> Result<()> {
        for dev in devs {
            ns.ip(&["link", "set", "dev", dev, "xdpgeneric", "off"])?;
            ns.ip(&["link", "set", "dev", dev, "xdpdrv", "off"])?;
        }
        Ok(())
    }
}

fn check_prerequisites() -> Result<()> {
    let mut missing = Vec::new();
    if !Path::new(SOURCE_TARBALL).exists() {
        missing.push("linux-source-6.1");
    }
    if Command::new("clang").arg("--version").output().is_err() {
        missing.push("clang");
    }
    if !Path::new(LIBBPF_HEADER).exists() {
        missing.push("libbpf-dev");
    }
    if !missing.is_empty() {
        bail!(
            "missing Debian packages {} (the kernel's xdp_fwd sample): run `cargo xtask setup`",
            missing.join(" ")
        );
    }
    Ok(())
}

fn newer_than_source(path: &Path) -> Result<bool> {
    let source = fs::metadata(SOURCE_TARBALL)?.modified()?;
    Ok(fs::metadata(path)
        .and_then(|m| m.modified())
        .is_ok_and(|built| built > source))
}

/// `text` with each `(from, to)` replaced; fails if a `from` is not there (the sample
/// changed and the fix needs a look).
fn patch(text: &str, fixes: &[(&str, &str)]) -> Result<String> {
    let mut out = text.to_owned();
    for (from, to) in fixes {
        if !out.contains(from) {
            bail!(
                "the xdp_fwd sample no longer contains `{from}`: its out-of-tree fix needs updating"
            );
        }
        out = out.replace(from, to);
    }
    Ok(out)
}

fn run(program: &str, args: &[&str]) -> Result<()> {
    lab::run(program, args).map(drop)
}
