//! `cargo xtask dist`: the Debian package.
//!
//! 1. `cargo build --release -p bgp-ctl` (the eBPF object is embedded by its build script);
//! 2. the man pages and the bash, zsh and fish completions, written by the release
//!    binary itself (`bgp-ctl generate`, from its clap definition) into
//!    `<target>/release/dist/`, man pages gzipped as Debian wants them;
//! 3. `cargo deb --no-build`, with the assets, conffile and maintainer scripts of
//!    `[package.metadata.deb]` in bgp-ctl/Cargo.toml, into `<target>/dist/`.

use std::{
    path::{Path, PathBuf},
    process::Command,
    time::Instant,
};

use anyhow::{Context, Result, bail};

use crate::{
    prereq::{self, Need},
    setup,
};

/// Shells whose completions the package ships.
const SHELLS: &[&str] = &["bash", "zsh", "fish"];

/// Builds the package; returns its path. On a fresh machine, installs what the build
/// and cargo-deb need first, as `run` and `test` do.
pub fn dist() -> Result<PathBuf> {
    let start = Instant::now();
    let missing = prereq::missing(Need::Dist);
    if !missing.is_empty() {
        let what: Vec<String> = missing.iter().map(ToString::to_string).collect();
        println!("dist: missing {}; installing it first", what.join(", "));
        setup::setup_for(Need::Dist)?;
    }
    let target = lab::dist::target_dir();

    crate::cargo::build_agent_release("dist")?;
    let bin = target.join("release/bgp-ctl");

    // cargo-deb reads `target/release/...` assets from the build's output directory.
    let generated = target.join("release/dist");
    if generated.exists() {
        std::fs::remove_dir_all(&generated)
            .with_context(|| format!("removing {}", generated.display()))?;
    }
    let man = generated.join("man");
    run(&bin, &["generate", "man", "--out", path_str(&man)?])?;
    for page in std::fs::read_dir(&man).with_context(|| format!("reading {}", man.display()))? {
        let page = page?.path();
        // -n: no name or time stamp in the header, so the package is reproducible.
        run(Path::new("gzip"), &["-9nf", path_str(&page)?])?;
    }
    let completions = generated.join("completions");
    for shell in SHELLS {
        run(
            &bin,
            &[
                "generate",
                "completions",
                shell,
                "--out",
                path_str(&completions)?,
            ],
        )?;
    }

    let out_dir = target.join("dist");
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    for old in std::fs::read_dir(&out_dir)? {
        let old = old?.path();
        if old.extension().is_some_and(|e| e == "deb") {
            std::fs::remove_file(&old).with_context(|| format!("removing {}", old.display()))?;
        }
    }
    crate::cargo::step(
        "dist",
        &[
            "deb",
            "--package",
            "bgp-ctl",
            "--no-build",
            "--output",
            path_str(&out_dir)?,
        ],
    )?;
    let deb = lab::dist::dist_deb()?;
    println!(
        "dist: {} [{:.1} s]",
        deb.display(),
        start.elapsed().as_secs_f64()
    );
    Ok(deb)
}

fn path_str(p: &Path) -> Result<&str> {
    p.to_str()
        .with_context(|| format!("non-UTF-8 path {}", p.display()))
}

fn run(program: &Path, args: &[&str]) -> Result<()> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {}", program.display()))?;
    if !out.status.success() {
        bail!(
            "`{} {}` failed ({}): {}",
            program.display(),
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}
