//! Human tables for the CLI's `show` commands (JSON output is the API's own lines).

use std::fmt::Write as _;

use crate::api::protocol::{
    FibView, HealthView, NeighborDetail, NeighborSummary, ReloadReport, RouteView, StatsView,
};

/// `1h02m03s`, `3d04h05m`, `42s`: compact like birdc and FRR.
pub fn duration(secs: u64) -> String {
    let (d, h, m, s) = (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (d, h, m) {
        (0, 0, 0) => format!("{s}s"),
        (0, 0, _) => format!("{m}m{s:02}s"),
        (0, _, _) => format!("{h}h{m:02}m{s:02}s"),
        _ => format!("{d}d{h:02}h{m:02}m"),
    }
}

/// Lays out rows under a header, each column as wide as its widest cell; the last column
/// is not padded.
fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.zip(&widths).enumerate() {
            if i + 1 == widths.len() {
                l.push_str(cell);
            } else {
                let _ = write!(l, "{cell:<w$}  ");
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&mut header.iter().copied());
    for row in rows {
        line(&mut row.iter().map(String::as_str));
    }
    out
}

fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// `show neighbors`.
pub fn neighbors(list: &[NeighborSummary]) -> String {
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|n| {
            vec![
                n.name.clone(),
                n.address.to_string(),
                n.remote_asn.to_string(),
                n.state.clone(),
                duration(n.since_secs),
                n.received.to_string(),
                n.accepted.to_string(),
                n.advertised.to_string(),
                or_dash(n.last_error.as_ref()),
            ]
        })
        .collect();
    table(
        &[
            "NAME",
            "ADDRESS",
            "ASN",
            "STATE",
            "SINCE",
            "RCVD",
            "ACCEPTED",
            "ADV",
            "LAST ERROR",
        ],
        &rows,
    )
}

/// `show neighbor X`.
pub fn neighbor(d: &NeighborDetail) -> String {
    let s = &d.summary;
    let mut o = String::new();
    let _ = writeln!(
        o,
        "neighbor {} ({}), AS {}",
        s.name, s.address, s.remote_asn
    );
    let _ = writeln!(
        o,
        "  state          {} for {}",
        s.state,
        duration(s.since_secs)
    );
    let _ = writeln!(
        o,
        "  local          AS {}, address {}",
        d.local_asn,
        or_dash(d.local_address)
    );
    let _ = writeln!(o, "  router id      {}", or_dash(d.router_id));
    let _ = writeln!(
        o,
        "  hold time      {} (configured {}), keepalive {}",
        or_dash(d.hold_time),
        d.configured_hold_time,
        or_dash(d.keepalive)
    );
    let _ = writeln!(o, "  families       {}", d.families.join(", "));
    let _ = writeln!(
        o,
        "  capabilities   sent: {}",
        d.capabilities_sent.join(", ")
    );
    let _ = writeln!(
        o,
        "                 received: {}",
        d.capabilities_received.join(", ")
    );
    let _ = writeln!(
        o,
        "  prefixes       received {}, accepted {}, advertised {}",
        s.received, s.accepted, s.advertised
    );
    let (i, x) = (d.messages_received, d.messages_sent);
    let _ = writeln!(
        o,
        "  messages in    open {} update {} notification {} keepalive {} refresh {}",
        i.open, i.update, i.notification, i.keepalive, i.route_refresh
    );
    let _ = writeln!(
        o,
        "  messages out   open {} update {} notification {} keepalive {} refresh {}",
        x.open, x.update, x.notification, x.keepalive, x.route_refresh
    );
    let _ = writeln!(
        o,
        "  policy         import {}, export {}",
        d.import_policy
            .as_deref()
            .unwrap_or("none (RFC 8212: nothing)"),
        d.export_policy
            .as_deref()
            .unwrap_or("none (RFC 8212: nothing)")
    );
    let _ = writeln!(o, "  flaps          {}", d.flaps);
    let _ = writeln!(o, "  bfd            {}", or_dash(d.bfd.as_ref()));
    let _ = writeln!(
        o,
        "  graceful rst   {}",
        or_dash(d.graceful_restart.as_ref())
    );
    let _ = writeln!(o, "  last error     {}", or_dash(s.last_error.as_ref()));
    o
}

/// `show routes`: one row per path; `*` best, `=` multipath, `s` stale.
pub fn routes(list: &[RouteView]) -> String {
    let mut rows = Vec::new();
    for r in list {
        for (i, p) in r.paths.iter().enumerate() {
            let mark = format!(
                "{}{}{}",
                if p.best { "*" } else { " " },
                if p.multipath { "=" } else { " " },
                if p.stale { "s" } else { " " }
            );
            rows.push(vec![
                if i == 0 {
                    r.prefix.to_string()
                } else {
                    String::new()
                },
                mark.trim_end().to_string(),
                or_dash(p.next_hop),
                p.from.clone(),
                if p.as_path.is_empty() {
                    "-".into()
                } else {
                    p.as_path.clone()
                },
                p.origin.clone(),
                or_dash(p.med),
                or_dash(p.local_pref),
                if p.communities.is_empty() {
                    "-".into()
                } else {
                    p.communities.join(" ")
                },
            ]);
        }
    }
    let mut out = table(
        &[
            "PREFIX",
            "",
            "NEXT HOP",
            "FROM",
            "AS PATH",
            "ORIGIN",
            "MED",
            "LP",
            "COMMUNITIES",
        ],
        &rows,
    );
    out.push_str("* best, = multipath (ECMP), s stale (graceful restart)\n");
    out
}

/// `show fib`: one row per group member.
pub fn fib(list: &[FibView]) -> String {
    let mut rows = Vec::new();
    for f in list {
        for (i, m) in f.members.iter().enumerate() {
            let rewrite = match (&m.src_mac, &m.dst_mac) {
                (Some(s), Some(d)) => format!("{s} -> {d}"),
                _ => "-".into(),
            };
            rows.push(vec![
                if i == 0 {
                    f.prefix.to_string()
                } else {
                    String::new()
                },
                if i == 0 {
                    f.group.to_string()
                } else {
                    String::new()
                },
                if f.local_address {
                    format!("{} (address)", m.kind)
                } else {
                    m.kind.clone()
                },
                or_dash(m.address),
                or_dash(m.interface.as_ref()),
                rewrite,
                or_dash(m.mtu),
                m.buckets.to_string(),
            ]);
        }
    }
    table(
        &[
            "PREFIX",
            "GROUP",
            "KIND",
            "NEXT HOP",
            "DEV",
            "MAC REWRITE",
            "MTU",
            "BUCKETS",
        ],
        &rows,
    )
}

/// `show stats`.
pub fn stats(s: &StatsView) -> String {
    let mut rows: Vec<Vec<String>> = s
        .attached
        .iter()
        .map(|(dev, mode)| vec![format!("attached {dev}"), mode.clone()])
        .collect();
    rows.extend(
        s.counters
            .iter()
            .map(|(n, v)| vec![n.clone(), v.to_string()]),
    );
    let mut out = table(&["COUNTER", "PACKETS"], &rows);
    out.push('\n');
    let t = &s.tables;
    let mut entries = vec![
        vec!["routes".into(), t.routes.to_string()],
        vec!["local addresses".into(), t.local_addresses.to_string()],
        vec!["groups".into(), t.groups.to_string()],
        vec!["next hops".into(), t.next_hops.to_string()],
    ];
    if let Some(k) = &s.kernel_fib {
        entries.push(vec![
            "kernel routes (proto 200)".into(),
            k.routes.to_string(),
        ]);
        // The exceptions, only when there are any.
        for (what, n) in [
            ("kernel routes stale (adopted)", k.stale),
            ("kernel routes refused", k.failed),
            ("kernel routes pending", k.pending),
        ] {
            if n > 0 {
                entries.push(vec![what.into(), n.to_string()]);
            }
        }
    }
    out.push_str(&table(&["TABLE", "ENTRIES"], &entries));
    out.push('\n');
    let m = &s.map_ops;
    out.push_str(&table(
        &["MAP OPERATIONS", "SINCE START"],
        &[
            vec!["route writes".into(), m.route_writes.to_string()],
            vec!["group writes".into(), m.group_writes.to_string()],
            vec!["next-hop writes".into(), m.next_hop_writes.to_string()],
            vec!["rcu barriers waited".into(), m.barriers.to_string()],
            vec![
                "rcu barriers in background".into(),
                m.background_barriers.to_string(),
            ],
        ],
    ));
    out
}

/// `reload`.
pub fn reload(r: &ReloadReport) -> String {
    let mut o = String::new();
    if r.changes.is_empty() {
        o.push_str("reload: no changes\n");
        return o;
    }
    let _ = writeln!(
        o,
        "reload: {} change{}, {} session{} reset",
        r.changes.len(),
        if r.changes.len() == 1 { "" } else { "s" },
        r.sessions_reset.len(),
        if r.sessions_reset.len() == 1 { "" } else { "s" }
    );
    for c in &r.changes {
        let _ = writeln!(o, "  {c}");
    }
    for s in &r.sessions_reset {
        let _ = writeln!(o, "  session reset: {s}");
    }
    o
}

/// `health`: one line, naming every failing condition.
pub fn health(h: &HealthView) -> String {
    format!("{}\n", h.line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_are_compact() {
        assert_eq!(duration(42), "42s");
        assert_eq!(duration(62), "1m02s");
        assert_eq!(duration(3723), "1h02m03s");
        assert_eq!(duration(3 * 86400 + 4 * 3600 + 5 * 60), "3d04h05m");
    }

    #[test]
    fn stats_show_kernel_routes_only_when_the_kernel_fib_is_on() {
        use crate::api::protocol::{KernelFibView, MapOpsView, TableCounts};
        let mut s = StatsView {
            counters: vec![("rx".into(), 10)],
            attached: vec![("eth0".into(), "skb".into())],
            tables: TableCounts {
                routes: 3,
                local_addresses: 2,
                groups: 3,
                next_hops: 4,
            },
            map_ops: MapOpsView::default(),
            kernel_fib: None,
        };
        assert!(!stats(&s).contains("kernel"), "{}", stats(&s));
        s.kernel_fib = Some(KernelFibView {
            routes: 2,
            stale: 1,
            ..KernelFibView::default()
        });
        let text = stats(&s);
        assert!(
            text.contains("\nkernel routes (proto 200)      2\n"),
            "{text}"
        );
        assert!(
            text.contains("\nkernel routes stale (adopted)  1\n"),
            "{text}"
        );
        // Refused and pending are shown only when there are any.
        assert!(
            !text.contains("refused") && !text.contains("pending"),
            "{text}"
        );
    }
}
