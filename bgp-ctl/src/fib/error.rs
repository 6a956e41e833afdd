use std::path::PathBuf;

/// What can go wrong between us and the kernel's BPF subsystem.
#[derive(Debug, thiserror::Error)]
pub enum FibError {
    /// The pin directory is not on a bpffs mount.
    #[error("{0} is not on a bpf filesystem (mount one with `mount -t bpf bpf /sys/fs/bpf`)")]
    NotBpffs(PathBuf),
    /// Maps pinned by a binary with another layout version.
    #[error(
        "maps pinned in {dir} have layout version {found}, this binary uses {expected}: \
         detach the old dataplane and remove the pins (`bgp-ctl dataplane detach --all`) \
         or run the matching binary"
    )]
    LayoutMismatch {
        /// The pin directory.
        dir: PathBuf,
        /// Version found in the pinned `config` map.
        found: u32,
        /// This binary's version.
        expected: u32,
    },
    /// Nothing is pinned where the dataplane's maps should be.
    #[error(
        "no dataplane pinned in {0}: the daemon (or `bgp-ctl dataplane attach`) has not \
         run, or it pins elsewhere (`[dataplane] pin-dir`)"
    )]
    NoPins(PathBuf),
    /// One map is missing from the pin directory.
    #[error(
        "no map `{1}` pinned in {0}: pinned by another version? (`bgp-ctl dataplane detach --all`)"
    )]
    NotPinned(PathBuf, &'static str),
    /// A map the object should define is missing.
    #[error("the XDP object has no map `{0}`")]
    MissingMap(&'static str),
    /// The object has no XDP program of the expected name.
    #[error("the XDP object has no program `{0}`")]
    MissingProgram(&'static str),
    /// A table is full.
    #[error("the dataplane has no room for more {0}")]
    Full(&'static str),
    /// A route names a next hop that was never defined.
    #[error("unknown next hop {0:?}")]
    UnknownNextHop(super::NextHopKey),
    /// A group must have 1 to 16 members.
    #[error("a next-hop group needs 1 to 16 members, not {0}")]
    GroupSize(usize),
    /// The bookkeeping disagrees with itself (a bug).
    #[error("inconsistent FIB state: {0}")]
    Inconsistent(&'static str),
    /// No such interface.
    #[error("no interface named `{0}`")]
    NoInterface(String),
    /// Filesystem error on a pin path.
    #[error("{path}: {source}")]
    Io {
        /// Path involved.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Loading the object (map creation, verifier) failed.
    #[error("loading the XDP object: {0}")]
    Load(#[from] aya::EbpfError),
    /// A program operation (load, attach, link) failed.
    #[error("XDP program: {0}")]
    Program(#[from] aya::programs::ProgramError),
    /// A map operation failed.
    #[error("map: {0}")]
    Map(#[from] aya::maps::MapError),
    /// A device-map operation failed.
    #[error("egress device map: {0}")]
    DevMap(#[from] aya::maps::xdp::XdpMapError),
    /// Pinning failed.
    #[error("pinning: {0}")]
    Pin(#[from] aya::pin::PinError),
    /// A pinned link could not be opened or updated.
    #[error("XDP link: {0}")]
    Link(#[from] aya::programs::links::LinkError),
}
