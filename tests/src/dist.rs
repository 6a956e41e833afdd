//! Where `cargo xtask dist` puts the package and where `cargo xtask setup` puts the
//! Python tools of the packaging tests: one definition for xtask and the tests.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

/// kubernetes-validate (PyPI), which bundles the Kubernetes JSON schemas: the
/// DaemonSet test validates offline with it.
pub const KUBERNETES_VALIDATE_VERSION: &str = "1.37.0";

/// Kubernetes version whose schema the manifests are validated against.
pub const KUBERNETES_SCHEMA_VERSION: &str = "1.33.0";

/// The virtualenv setup installs Python tools into (not the system's Python, which
/// Debian marks externally managed).
pub const TOOLS_VENV: &str = "/opt/bgp-ctl-dev/venv";

/// The workspace's root directory.
pub fn workspace_root() -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    here.parent().unwrap_or(here).to_path_buf()
}

/// Cargo's target directory: `$CARGO_TARGET_DIR` if set, else `<workspace>/target`.
pub fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => workspace_root().join(dir),
        None => workspace_root().join("target"),
    }
}

/// Where `cargo xtask dist` writes the package.
pub fn dist_dir() -> PathBuf {
    target_dir().join("dist")
}

/// The package `cargo xtask dist` built: the one `bgp-ctl_*.deb` in [`dist_dir`].
pub fn dist_deb() -> Result<PathBuf> {
    let dir = dist_dir();
    let debs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("no {}: run `cargo xtask dist`", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("bgp-ctl_") && n.ends_with(".deb"))
        })
        .collect();
    match debs.as_slice() {
        [deb] => Ok(deb.clone()),
        [] => bail!(
            "no bgp-ctl_*.deb in {}: run `cargo xtask dist`",
            dir.display()
        ),
        _ => bail!(
            "{} packages in {}: run `cargo xtask dist` (it keeps only one)",
            debs.len(),
            dir.display()
        ),
    }
}

/// The kubernetes-validate executable setup installs.
pub fn kubernetes_validate() -> PathBuf {
    Path::new(TOOLS_VENV).join("bin/kubernetes-validate")
}
