//! Builds the `xdp-fwd` eBPF object with aya-build (through `ebpf-build`), so that
//! `bgp-ctl` embeds it.

use std::{env, path::Path};

fn main() -> anyhow::Result<()> {
    let manifest_dir = env::var("CARGO_MANIFEST_DIR")?;
    let workspace = Path::new(&manifest_dir)
        .parent()
        .ok_or_else(|| anyhow::anyhow!("bgp-ctl has no parent directory"))?;
    ebpf_build::build(
        "xdp-fwd",
        &workspace.join("xdp-fwd"),
        &[&workspace.join("xdp-fwd-common")],
    )
}
