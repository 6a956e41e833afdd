//! Builds the `xdp-fwd` eBPF object with aya-build, so that `bgp-ctl` embeds it.

use std::{env, path::Path, process::Command};

fn main() -> anyhow::Result<()> {
    println!("cargo:rerun-if-env-changed=XDP_FWD_TOOLCHAIN");
    let toolchain = env::var("XDP_FWD_TOOLCHAIN").unwrap_or_else(|_| "nightly".to_owned());
    let manifest_dir = env::var("CARGO_MANIFEST_DIR")?;
    let workspace = Path::new(&manifest_dir)
        .parent()
        .ok_or_else(|| anyhow::anyhow!("bgp-ctl has no parent directory"))?;
    let ebpf_dir = workspace.join("xdp-fwd");
    // aya-build watches the program's own crate; the shared layouts are part of it too.
    println!(
        "cargo:rerun-if-changed={}",
        workspace.join("xdp-fwd-common").display()
    );

    // Fail with one clear line, not a page of nested cargo output, when the eBPF
    // toolchain is incomplete. `cargo xtask build` checks the same before cargo runs.
    if Command::new("bpf-linker")
        .arg("--version")
        .output()
        .is_err()
    {
        return missing("bpf-linker is not installed");
    }
    if Command::new("rustup")
        .args(["run", &toolchain, "rustc", "--version"])
        .output()
        .map_or(true, |o| !o.status.success())
    {
        return missing(&format!(
            "rust toolchain `{toolchain}` (XDP_FWD_TOOLCHAIN) is not installed"
        ));
    }

    // -Z build-std=core on a stable compiler; set here so only the eBPF build sees it.
    if env::var_os("RUSTC_BOOTSTRAP").is_none() {
        // SAFETY: build scripts are single-threaded at this point.
        unsafe { env::set_var("RUSTC_BOOTSTRAP", "1") };
    }
    // The inner cargo's progress lines would come out as a page of `warning:` lines;
    // compiler diagnostics still do, through its JSON messages.
    if env::var_os("CARGO_TERM_QUIET").is_none() {
        // SAFETY: as above.
        unsafe { env::set_var("CARGO_TERM_QUIET", "true") };
    }
    let root_dir = ebpf_dir
        .to_str()
        .ok_or_else(|| anyhow::anyhow!("non-UTF-8 path {}", ebpf_dir.display()))?;
    aya_build::build_ebpf(
        [aya_build::Package {
            name: "xdp-fwd",
            root_dir,
            ..Default::default()
        }],
        aya_build::Toolchain::Custom(&toolchain),
    )
}

/// `cargo::error` fails the build with just this line once the script returns.
fn missing(what: &str) -> anyhow::Result<()> {
    println!("cargo::error={what}: run `cargo xtask setup`");
    Ok(())
}
