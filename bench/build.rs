//! Builds the benchmark's `xdp-pktgen` eBPF object (generator and sink) with aya-build
//! (through `ebpf-build`, as bgp-ctl's build script builds `xdp-fwd`). Only the
//! benchmark embeds it.

use std::{env, path::Path};

fn main() -> anyhow::Result<()> {
    let manifest_dir = env::var("CARGO_MANIFEST_DIR")?;
    let bench = Path::new(&manifest_dir);
    ebpf_build::build(
        "xdp-pktgen",
        &bench.join("xdp-pktgen"),
        &[
            &bench.join("xdp-pktgen-common"),
            &bench.join("../xdp-fwd-common"),
        ],
    )
}
