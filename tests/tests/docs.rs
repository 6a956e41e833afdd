//! The operator guide (`docs/*.md`) stays true to the code and to FRR:
//!
//! - every fenced block whose info string is `toml bgp-ctl` (a full configuration file)
//!   passes `bgp-ctl config check`, the same parser and validation the daemon uses;
//! - every ` ```frr ` block passes FRR's own parser, `vtysh --dryrun -f FILE`, which reads
//!   the file through vtysh's command grammar without talking to any daemon (it checks
//!   syntax, not references such as an undefined peer group).
//!
//! A failure names the file, the line of the block's opening fence and what the checker
//! said. Blocks in other languages (`eos`, plain `toml` fragments, `sh`, `text`) are not
//! checked here.

use std::{
    path::{Path, PathBuf},
    process::{Command, Output},
};

use anyhow::{Context, Result, bail, ensure};

/// A fenced code block of a Markdown file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Block {
    /// Line of the opening fence (from 1).
    line: usize,
    /// The info string after the fence, trimmed (`toml bgp-ctl`, `frr`, ...).
    info: String,
    /// The block's content, with the fence's indentation removed.
    text: String,
}

impl Block {
    /// The info string's words: the language first.
    fn words(&self) -> Vec<&str> {
        self.info.split_whitespace().collect()
    }

    /// A complete bgp-ctl configuration file: ```` ```toml bgp-ctl ````.
    fn is_bgp_ctl_config(&self) -> bool {
        let w = self.words();
        w.first() == Some(&"toml") && w.contains(&"bgp-ctl")
    }

    /// An FRR configuration: ```` ```frr ````.
    fn is_frr(&self) -> bool {
        self.words().first() == Some(&"frr")
    }
}

/// The fenced code blocks of a CommonMark text: ```` ``` ```` or `~~~` fences of three or
/// more, indented by at most three spaces, closed by a fence of the same character at
/// least as long; an unclosed block runs to the end.
fn fenced_blocks(markdown: &str) -> Vec<Block> {
    struct Open {
        line: usize,
        info: String,
        fence: char,
        len: usize,
        indent: usize,
        text: String,
    }
    let mut out = Vec::new();
    let mut open: Option<Open> = None;
    for (i, line) in markdown.lines().enumerate() {
        let indent = line.len() - line.trim_start_matches(' ').len();
        let rest = &line[indent..];
        let fence_char = rest.chars().next().filter(|c| *c == '`' || *c == '~');
        let run = fence_char.map_or(0, |c| rest.chars().take_while(|x| *x == c).count());
        match &mut open {
            None => {
                if let Some(c) = fence_char
                    && indent <= 3
                    && run >= 3
                {
                    open = Some(Open {
                        line: i + 1,
                        info: rest[run..].trim().to_owned(),
                        fence: c,
                        len: run,
                        indent,
                        text: String::new(),
                    });
                }
            }
            Some(o) => {
                let closes = fence_char == Some(o.fence)
                    && indent <= 3
                    && run >= o.len
                    && rest[run..].trim().is_empty();
                if closes {
                    if let Some(o) = open.take() {
                        out.push(Block {
                            line: o.line,
                            info: o.info,
                            text: o.text,
                        });
                    }
                } else {
                    // Content lines lose up to the opening fence's indentation.
                    let strip = indent.min(o.indent);
                    o.text.push_str(&line[strip..]);
                    o.text.push('\n');
                }
            }
        }
    }
    if let Some(o) = open {
        out.push(Block {
            line: o.line,
            info: o.info,
            text: o.text,
        });
    }
    out
}

/// `docs/*.md`, sorted.
fn doc_files() -> Result<Vec<PathBuf>> {
    let dir = lab::dist::workspace_root().join("docs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .with_context(|| format!("reading {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    files.sort();
    ensure!(!files.is_empty(), "no Markdown files in {}", dir.display());
    Ok(files)
}

/// `docs/fabric.md` rather than an absolute path, in messages.
fn shown(path: &Path) -> String {
    let root = lab::dist::workspace_root();
    path.strip_prefix(&root)
        .unwrap_or(path)
        .display()
        .to_string()
}

/// Every block of `docs/*.md` that `select` picks, with the file it is in.
fn selected_blocks(select: fn(&Block) -> bool) -> Result<Vec<(PathBuf, Block)>> {
    let mut out = Vec::new();
    for file in doc_files()? {
        let text = std::fs::read_to_string(&file)
            .with_context(|| format!("reading {}", file.display()))?;
        out.extend(
            fenced_blocks(&text)
                .into_iter()
                .filter(select)
                .map(|b| (file.clone(), b)),
        );
    }
    Ok(out)
}

/// Writes each block to a file of its own, runs `check(path)` on it, and fails with every
/// block the checker rejected (file, line, info string, the checker's output).
fn check_all(
    blocks: &[(PathBuf, Block)],
    suffix: &str,
    what: &str,
    check: impl Fn(&Path) -> Result<Output>,
) -> Result<()> {
    let dir = tempfile::tempdir().context("a temporary directory")?;
    let mut failures = Vec::new();
    for (i, (file, block)) in blocks.iter().enumerate() {
        let stem = file
            .file_stem()
            .map_or_else(|| "doc".into(), |s| s.to_string_lossy().into_owned());
        let path = dir
            .path()
            .join(format!("{i:02}-{stem}-line{}.{suffix}", block.line));
        std::fs::write(&path, &block.text)
            .with_context(|| format!("writing {}", path.display()))?;
        let out = check(&path)?;
        if !out.status.success() {
            failures.push(format!(
                "{}:{}: the ```{} block is rejected by {what} ({}); its line 1 is {}:{}\n{}{}",
                shown(file),
                block.line,
                block.info,
                out.status,
                shown(file),
                block.line + 1,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    if !failures.is_empty() {
        bail!(
            "{} of {} blocks fail:\n\n{}",
            failures.len(),
            blocks.len(),
            failures.join("\n")
        );
    }
    Ok(())
}

/// The blocks must be there at all: a renamed info string would otherwise pass unseen.
fn require_in(blocks: &[(PathBuf, Block)], file: &str, what: &str) -> Result<()> {
    ensure!(
        blocks
            .iter()
            .any(|(f, _)| f.file_name().is_some_and(|n| n == file)),
        "docs/{file} has no {what} block (found {} in docs/ in all)",
        blocks.len()
    );
    Ok(())
}

#[test]
fn bgp_ctl_configs_in_the_docs_pass_config_check() -> Result<()> {
    let bin = lab::agent::bgp_ctl_bin()?;
    let blocks = selected_blocks(Block::is_bgp_ctl_config)?;
    require_in(&blocks, "fabric.md", "```toml bgp-ctl")?;
    require_in(&blocks, "install.md", "```toml bgp-ctl")?;
    check_all(&blocks, "toml", "`bgp-ctl config check`", |path| {
        Command::new(&bin)
            .args(["config", "check"])
            .arg(path)
            .output()
            .with_context(|| format!("running {}", bin.display()))
    })
}

#[test]
fn frr_configs_in_the_docs_pass_frr_parser() -> Result<()> {
    let blocks = selected_blocks(Block::is_frr)?;
    require_in(&blocks, "fabric.md", "```frr")?;
    check_all(&blocks, "conf", "`vtysh --dryrun -f`", |path| {
        Command::new("vtysh")
            .arg("--dryrun")
            .arg("-f")
            .arg(path)
            .output()
            .context("running vtysh (FRR; `cargo xtask setup` installs it)")
    })
}

#[test]
fn fenced_blocks_are_found_with_their_info_strings_and_lines() {
    let md = "# Title\n\
              \n\
              ```toml bgp-ctl\n\
              asn = 1\n\
              ```\n\
              text\n\
              \x20\x20```frr\n\
              \x20\x20router bgp 65001\n\
              \x20\x20\x20neighbor X peer-group\n\
              \x20\x20```\n\
              ````md\n\
              ```toml bgp-ctl\n\
              not a block of its own\n\
              ```\n\
              ````\n\
              ~~~toml\n\
              [fragment]\n\
              ~~~\n";
    let blocks = fenced_blocks(md);
    let summary: Vec<(usize, &str, bool, bool)> = blocks
        .iter()
        .map(|b| (b.line, b.info.as_str(), b.is_bgp_ctl_config(), b.is_frr()))
        .collect();
    assert_eq!(
        summary,
        [
            (3, "toml bgp-ctl", true, false),
            (7, "frr", false, true),
            (11, "md", false, false),
            (16, "toml", false, false),
        ]
    );
    assert_eq!(blocks[0].text, "asn = 1\n");
    assert_eq!(blocks[1].text, "router bgp 65001\n neighbor X peer-group\n");
    assert_eq!(
        blocks[2].text,
        "```toml bgp-ctl\nnot a block of its own\n```\n"
    );
}
