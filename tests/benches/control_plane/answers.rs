//! Reading the receivers' CLI answers that the benchmark relies on. Kept free of the
//! rest of the benchmark so that `tests/tests/control_plane_answers.rs` can include and
//! test it (a benchmark without the test harness runs no tests of its own).

use std::net::IpAddr;

use anyhow::{Context, Result, anyhow, bail};
use bgp_ctl::api::{API_VERSION, Envelope, Reply};

/// `accepted` of the neighbor at `feeder` in `show neighbors --json` output.
pub fn accepted_of(text: &str, feeder: IpAddr) -> Result<u64> {
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let env: Envelope<Reply> = serde_json::from_str(line)
            .with_context(|| format!("ours: not a control API line: {line}"))?;
        if env.version != API_VERSION {
            bail!(
                "ours: the daemon speaks API version {}, the bench {API_VERSION}",
                env.version
            );
        }
        if let Reply::Neighbor(n) = env.body
            && n.address == feeder
        {
            return Ok(n.accepted);
        }
    }
    bail!("ours: no neighbor {feeder} in `show neighbors --json`: {text:?}")
}

/// The `imported` number of the `Routes:` line of `show protocols all`; 0 when there
/// is none (the channel is not up yet).
pub fn imported(text: &str) -> Result<u64> {
    let Some(line) = text.lines().find_map(|l| l.trim().strip_prefix("Routes:")) else {
        return Ok(0);
    };
    line.split(',')
        .find_map(|part| part.trim().strip_suffix(" imported"))
        .ok_or_else(|| anyhow!("no imported count in BIRD's {line:?}"))?
        .trim()
        .parse()
        .with_context(|| format!("bad imported count in BIRD's {line:?}"))
}
