//! BIRD 2 as a receiver: RIB only (no kernel protocol, so nothing goes to a FIB),
//! `import all; export none;` towards the feeder.

use anyhow::{Result, anyhow};
use lab::{Netns, bird::Bird};

use crate::receiver::{PeerSetup, Receiver};

/// BIRD's table of IPv4 routes.
const TABLE: &str = "master4";

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
protocol bgp feeder {{
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
    /// `show route table master4 count`: the routes in BIRD's table, which only the
    /// feeder fills. (The protocol's `imported` counter is cheaper but stays at its last
    /// value while the table is flushed after the session went down.)
    fn routes(&mut self) -> Result<u64> {
        self.bird.route_count(TABLE)
    }

    fn pids(&self) -> Result<Vec<u32>> {
        Ok(vec![
            self.bird
                .pid()
                .ok_or_else(|| anyhow!("BIRD is not running"))?,
        ])
    }
}
