//! BIRD 2 as a receiver: RIB only (no kernel protocol, so nothing goes to a FIB),
//! `import all; export none;` towards the feeder.

use anyhow::{Result, anyhow, bail};
use lab::{Netns, bird::Bird};

use crate::{
    answers::imported,
    receiver::{PeerSetup, Receiver},
};

/// BIRD's table of IPv4 routes.
const TABLE: &str = "master4";
/// The BGP protocol facing the feeder.
const PROTOCOL: &str = "feeder";

/// A BIRD instance receiving the feed.
pub struct BirdReceiver {
    bird: Bird,
}

impl BirdReceiver {
    /// Starts BIRD in `ns`, passive towards the feeder.
    pub fn start(ns: &Netns, setup: &PeerSetup) -> Result<Self> {
        Ok(Self {
            bird: Bird::start(ns, &config(setup))?,
        })
    }
}

/// The whole config: the device protocol (so BIRD knows the link and accepts the
/// feeder's next hop as directly connected) and one BGP protocol.
fn config(s: &PeerSetup) -> String {
    format!(
        "router id {local};
protocol device {{}}
protocol bgp {PROTOCOL} {{
  local {local} as {asn};
  neighbor {feeder} as {feeder_asn};
  passive on;
  ipv4 {{ import all; export none; }};
}}
",
        local = s.local,
        asn = s.asn,
        feeder = s.feeder,
        feeder_asn = s.feeder_asn,
    )
}

impl Receiver for BirdReceiver {
    /// The feeder channel's `imported` counter (`show protocols all feeder`): routes
    /// from the feeder in the table, kept as they are added. Cheap, where counting the
    /// table walks a million routes on BIRD's only thread at every poll.
    fn routes(&mut self) -> Result<u64> {
        let text = self.bird.birdc(&format!("show protocols all {PROTOCOL}"))?;
        imported(&text)
    }

    /// The channel's counter against the table itself.
    fn confirm(&mut self, n: u64) -> Result<()> {
        let in_table = self.bird.route_count(TABLE)?;
        if in_table != n {
            bail!("BIRD's channel counted {n} routes imported, its table holds {in_table}");
        }
        Ok(())
    }

    /// While the feeder's protocol is in state `flush` (`show protocols feeder`, answered
    /// at once), BIRD is still removing the routes; after it, `show route table master4
    /// count` (only the feeder fills that table) confirms. Counting the table during the
    /// flush would wait for the flush's own events and blur the time by seconds; the
    /// channel's `imported` counter keeps its last value meanwhile.
    fn remaining(&mut self) -> Result<Option<u64>> {
        let text = self.bird.birdc(&format!("show protocols {PROTOCOL}"))?;
        let state = text
            .lines()
            .find(|l| l.split_whitespace().next() == Some(PROTOCOL))
            .and_then(|l| l.split_whitespace().nth(3))
            .ok_or_else(|| anyhow!("no protocol {PROTOCOL} in BIRD's {text:?}"))?;
        if state == "flush" {
            return Ok(None);
        }
        self.bird.route_count(TABLE).map(Some)
    }

    fn pids(&self) -> Result<Vec<u32>> {
        Ok(vec![
            self.bird
                .pid()
                .ok_or_else(|| anyhow!("BIRD is not running"))?,
        ])
    }
}
