//! FRR's bgpd as a receiver, run without zebra (`bgpd -Z`): a RIB-only speaker, like
//! BIRD without a kernel protocol, so neither installs routes into a FIB. Its memory is
//! bgpd's alone. Import: a permit-all route-map; export: none (no outbound policy, so
//! RFC 8212, on by default in FRR 8.4, sends nothing).

use anyhow::{Context, Result, anyhow};
use lab::{
    Netns,
    frr::{Frr, FrrOptions},
};
use serde_json::Value;

use crate::receiver::{PeerSetup, Receiver};

/// A bgpd receiving the feed.
pub struct FrrReceiver {
    frr: Frr,
    feeder: String,
    /// The IPv4 unicast table version before the feed: it grows by one for every
    /// prefix that goes through best-path selection.
    base_version: u64,
}

impl FrrReceiver {
    /// Starts bgpd (no zebra) in `ns`, passive towards the feeder.
    pub fn start(ns: &Netns, setup: &PeerSetup) -> Result<Self> {
        let frr = Frr::start_with(
            ns,
            &config(setup),
            FrrOptions {
                zebra: false,
                ..FrrOptions::default()
            },
        )?;
        let mut rx = Self {
            frr,
            feeder: setup.feeder.to_string(),
            base_version: 0,
        };
        rx.base_version = u64_field(&rx.summary()?, "tableVersion")?;
        Ok(rx)
    }

    /// `show bgp ipv4 unicast summary json`.
    fn summary(&self) -> Result<Value> {
        self.frr.vtysh_json("show bgp ipv4 unicast summary json")
    }
}

fn config(s: &PeerSetup) -> String {
    format!(
        "frr defaults traditional
hostname receiver
route-map IMPORT-ALL permit 10
router bgp {asn}
 bgp router-id {local}
 neighbor {feeder} remote-as {feeder_asn}
 neighbor {feeder} passive
 address-family ipv4 unicast
  neighbor {feeder} route-map IMPORT-ALL in
 exit-address-family
",
        asn = s.asn,
        local = s.local,
        feeder = s.feeder,
        feeder_asn = s.feeder_asn,
    )
}

fn u64_field(json: &Value, name: &str) -> Result<u64> {
    json.get(name)
        .and_then(Value::as_u64)
        .ok_or_else(|| anyhow!("no {name} in FRR's summary: {json}"))
}

impl Receiver for FrrReceiver {
    /// One summary query: the smaller of the feeder's `pfxRcd` (paths accepted into the
    /// RIB) and the table version's growth (prefixes through best-path selection, which
    /// bgpd runs later from a work queue). `pfxRcd` alone runs ahead of selection.
    fn routes(&mut self) -> Result<u64> {
        let json = self.summary()?;
        let peer = json
            .get("peers")
            .and_then(|p| p.get(&self.feeder))
            .ok_or_else(|| anyhow!("FRR has no neighbor {}: {json}", self.feeder))?;
        let accepted =
            u64_field(peer, "pfxRcd").with_context(|| format!("the feeder's session: {peer}"))?;
        let selected = u64_field(&json, "tableVersion")?.saturating_sub(self.base_version);
        Ok(accepted.min(selected))
    }

    /// `ribCount` of the summary: the table's nodes (about 2 per /32, intermediate
    /// nodes included), 0 once every route is gone. `pfxRcd` drops to 0 as soon as the
    /// session is down, before the table is cleared, so it cannot say when that ends.
    fn remaining(&mut self) -> Result<Option<u64>> {
        u64_field(&self.summary()?, "ribCount").map(Some)
    }

    fn pids(&self) -> Result<Vec<u32>> {
        Ok(vec![
            self.frr
                .bgpd_pid()
                .ok_or_else(|| anyhow!("bgpd is not running"))?,
        ])
    }
}
