//! Loading the XDP object against pinned maps, and pinned XDP attachments.
//!
//! Everything the forwarding plane needs to keep forwarding lives in bpffs under one pin
//! directory: the maps (`<dir>/<map name>`) and one XDP link per uplink
//! (`<dir>/link_<ifname>`). A process that exits leaves them behind; the next one adopts
//! them instead of starting from empty maps.

use std::{
    ffi::CString,
    fmt,
    path::{Path, PathBuf},
    str::FromStr,
};

use aya::{
    Ebpf, EbpfLoader,
    maps::{Array, Map, MapData},
    programs::{
        TestRun, TestRunOptions, Xdp, XdpMode,
        links::{FdLink, PinnedLink},
        xdp::XdpLink,
    },
};
use xdp_fwd_common::{Config, LAYOUT_VERSION, PROGRAM_NAME, map_name};

use super::{FibError, object};

/// Where the daemon pins the dataplane unless told otherwise.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/xdp-fwd";

/// `statfs(2)` magic of bpffs.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// How the program is attached to an interface.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// Generic XDP, after the kernel has built an skb: works on every driver.
    Skb,
    /// Native XDP in the driver: the fast path.
    Driver,
}

impl AttachMode {
    fn xdp_mode(self) -> XdpMode {
        match self {
            // Never XdpMode::Default: it lets the kernel fall back to generic silently.
            Self::Skb => XdpMode::Skb,
            Self::Driver => XdpMode::Driver,
        }
    }
}

impl FromStr for AttachMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "skb" | "generic" => Ok(Self::Skb),
            "driver" | "native" => Ok(Self::Driver),
            _ => Err(format!(
                "unknown XDP attach mode `{s}` (expected `skb` or `driver`)"
            )),
        }
    }
}

impl fmt::Display for AttachMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Skb => "skb",
            Self::Driver => "driver",
        })
    }
}

/// The outcome of [`Dataplane::run_frame`].
#[derive(Clone, Debug)]
pub struct FrameRun {
    /// XDP action (`XDP_PASS` = 2, `XDP_DROP` = 1, `XDP_REDIRECT` = 4, ...).
    pub action: u32,
    /// The frame after the program ran.
    pub frame: Vec<u8>,
    /// Mean duration of one run, as the kernel measured it.
    pub per_run: std::time::Duration,
}

/// The loaded XDP program and its pinned maps.
pub struct Dataplane {
    ebpf: Ebpf,
    pin_dir: PathBuf,
}

impl Dataplane {
    /// Loads the embedded program, reusing the maps pinned under `pin_dir` or creating
    /// and pinning them there.
    ///
    /// Refuses maps pinned by a binary with another [`LAYOUT_VERSION`].
    pub fn open(pin_dir: impl AsRef<Path>) -> Result<Self, FibError> {
        let pin_dir = pin_dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&pin_dir).map_err(|source| FibError::Io {
            path: pin_dir.clone(),
            source,
        })?;
        check_bpffs(&pin_dir)?;
        check_pinned_layout(&pin_dir)?;

        let mut loader = EbpfLoader::new();
        for name in map_name::ALL {
            loader.map_pin_path(name, pin_dir.join(name));
        }
        let mut ebpf = loader.load(object())?;

        let mut config: Array<_, Config> = Array::try_from(
            ebpf.map_mut(map_name::CONFIG)
                .ok_or(FibError::MissingMap(map_name::CONFIG))?,
        )?;
        let mut cfg = config.get(&0, 0)?;
        if cfg.layout_version == 0 {
            cfg.layout_version = LAYOUT_VERSION;
            cfg.hash_seed = random_u32();
            config.set(0, cfg, 0)?;
        }

        let program = xdp_mut(&mut ebpf)?;
        program.load()?;
        Ok(Self { ebpf, pin_dir })
    }

    /// The pin directory.
    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    /// Attaches the program to `iface` through a pinned link, so that it keeps
    /// forwarding after this process exits. If a link is already pinned for `iface`,
    /// the program in it is replaced atomically (no packet sees no program) and its
    /// original mode is kept.
    pub fn attach(&mut self, iface: &str, mode: AttachMode) -> Result<(), FibError> {
        let link_pin = link_pin_path(&self.pin_dir, iface);
        let program = xdp_mut(&mut self.ebpf)?;
        if link_pin.exists() {
            let link = XdpLink::try_from(FdLink::from(PinnedLink::from_pin(&link_pin)?))?;
            program.attach_to_link(link)?;
            return Ok(());
        }
        let ifindex = if_index(iface)?;
        let id = program.attach_to_if_index(ifindex, mode.xdp_mode())?;
        let link = FdLink::try_from(program.take_link(id)?)?;
        link.pin(&link_pin)?;
        Ok(())
    }

    /// Runs the program once on `frame` (`BPF_PROG_TEST_RUN`) against the live maps, as
    /// if it had arrived on an uplink: returns the XDP action and the frame as the
    /// program left it. With `repeat > 1`, also the mean time per run.
    pub fn run_frame(&self, frame: &[u8], repeat: u32) -> Result<FrameRun, FibError> {
        let program: &Xdp = self
            .ebpf
            .program(PROGRAM_NAME)
            .ok_or(FibError::MissingProgram(PROGRAM_NAME))?
            .try_into()?;
        // Room for a frame that grows (it never does today; the kernel checks the size).
        let mut out = vec![0u8; frame.len() + 256];
        let mut opts = TestRunOptions::new();
        opts.data_in = Some(frame);
        opts.data_out = Some(&mut out);
        opts.repeat = repeat.max(1);
        let r = program.test_run(opts)?;
        out.truncate(r.data_size_out as usize);
        Ok(FrameRun {
            action: r.return_value,
            frame: out,
            per_run: r.duration,
        })
    }

    /// Removes the pinned link of `iface`, which detaches the program from it once no
    /// process holds the link open. Returns whether a link was pinned.
    pub fn detach(pin_dir: impl AsRef<Path>, iface: &str) -> Result<bool, FibError> {
        let path = link_pin_path(pin_dir.as_ref(), iface);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(source) => Err(FibError::Io { path, source }),
        }
    }

    /// Removes every pin (links and maps) under `pin_dir`, and the directory.
    pub fn remove_pins(pin_dir: impl AsRef<Path>) -> Result<(), FibError> {
        let dir = pin_dir.as_ref();
        match std::fs::remove_dir_all(dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(source) => Err(FibError::Io {
                path: dir.to_path_buf(),
                source,
            }),
        }
    }
}

/// The object's XDP program.
fn xdp_mut(ebpf: &mut Ebpf) -> Result<&mut Xdp, FibError> {
    Ok(ebpf
        .program_mut(PROGRAM_NAME)
        .ok_or(FibError::MissingProgram(PROGRAM_NAME))?
        .try_into()?)
}

/// `<pin_dir>/link_<iface>`; bpffs refuses '.' in names, and ':' never occurs in an
/// interface name, so the mapping stays one-to-one.
fn link_pin_path(pin_dir: &Path, iface: &str) -> PathBuf {
    pin_dir.join(format!("link_{}", iface.replace('.', ":")))
}

fn if_index(iface: &str) -> Result<u32, FibError> {
    let name = CString::new(iface).map_err(|_| FibError::NoInterface(iface.to_owned()))?;
    // SAFETY: `name` is a valid NUL-terminated string.
    match unsafe { libc::if_nametoindex(name.as_ptr()) } {
        0 => Err(FibError::NoInterface(iface.to_owned())),
        i => Ok(i),
    }
}

fn check_bpffs(dir: &Path) -> Result<(), FibError> {
    let path = CString::new(dir.as_os_str().as_encoded_bytes()).map_err(|_| FibError::Io {
        path: dir.to_path_buf(),
        source: std::io::ErrorKind::InvalidInput.into(),
    })?;
    // SAFETY: statfs only writes into `st`, which is large enough.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(path.as_ptr(), &mut st) } != 0 {
        return Err(FibError::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::last_os_error(),
        });
    }
    if st.f_type as i64 != BPF_FS_MAGIC {
        return Err(FibError::NotBpffs(dir.to_path_buf()));
    }
    Ok(())
}

/// Reads the layout version of maps already pinned in `dir`, before the loader reuses
/// them (aya reuses a pin without checking its shape).
fn check_pinned_layout(dir: &Path) -> Result<(), FibError> {
    let path = dir.join(map_name::CONFIG);
    if !path.exists() {
        return Ok(());
    }
    let mismatch = |found| FibError::LayoutMismatch {
        dir: dir.to_path_buf(),
        found,
        expected: LAYOUT_VERSION,
    };
    let data = MapData::from_pin(&path)?;
    // A value of another size is another layout, whatever it claims.
    let config: Array<_, Config> = Array::try_from(Map::Array(data)).map_err(|_| mismatch(0))?;
    let found = config.get(&0, 0)?.layout_version;
    if found != 0 && found != LAYOUT_VERSION {
        return Err(mismatch(found));
    }
    Ok(())
}

fn random_u32() -> u32 {
    let mut buf = [0u8; 4];
    // SAFETY: getrandom writes at most buf.len() bytes into buf.
    let n = unsafe { libc::getrandom(buf.as_mut_ptr().cast(), buf.len(), 0) };
    if n != 4 {
        // Only a seed for flow spreading: a fixed fallback is safe, just predictable.
        return 0x9e37_79b9;
    }
    u32::from_ne_bytes(buf)
}
