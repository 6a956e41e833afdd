//! Checks that need more than one field: references by name, ranges, exclusive options.

use std::collections::HashSet;

use toml::Spanned;

use super::schema::{Config, Neighbor};

/// A finding of validation: an error, or a note that does not stop the config.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    /// Byte range in the file (empty when the value was defaulted).
    pub span: std::ops::Range<usize>,
    /// What is wrong, or what the operator should know.
    pub reason: String,
}

/// Errors and warnings of one config.
#[derive(Debug, Default)]
pub(crate) struct Findings {
    pub errors: Vec<Finding>,
    pub warnings: Vec<Finding>,
}

impl Findings {
    fn error(&mut self, span: std::ops::Range<usize>, reason: impl Into<String>) {
        self.errors.push(Finding {
            span,
            reason: reason.into(),
        });
    }
    fn warn(&mut self, span: std::ops::Range<usize>, reason: impl Into<String>) {
        self.warnings.push(Finding {
            span,
            reason: reason.into(),
        });
    }
}

/// Names a peer may refer to without defining them.
pub const BUILTIN_POLICIES: [&str; 2] = crate::policy::BUILT_IN;

pub(crate) fn validate(c: &Config) -> Findings {
    let mut f = Findings::default();
    if *c.asn.get_ref() == 0 {
        f.error(c.asn.span(), "0 is not a valid AS number");
    }
    if c.router_id.get_ref().is_unspecified() {
        f.error(c.router_id.span(), "0.0.0.0 is not a valid BGP identifier");
    }
    check_dataplane(c, &mut f);
    let max = *c.multipath.max_paths.get_ref();
    if !(1..=16).contains(&max) {
        f.error(
            c.multipath.max_paths.span(),
            format!("max-paths {max}: must be 1 to 16 (the dataplane's group size)"),
        );
    }
    let rt = *c.graceful_restart.restart_time.get_ref();
    if rt > 4095 {
        f.error(
            c.graceful_restart.restart_time.span(),
            format!("restart-time {rt}: at most 4095 seconds (12 bits on the wire)"),
        );
    }
    if c.bfd.get_ref().multiplier == 0 || c.bfd.get_ref().interval_ms < 10 {
        f.error(
            c.bfd.span(),
            "interval-ms must be at least 10 and multiplier at least 1",
        );
    }
    check_timers(c.timers.get_ref(), &mut f);

    let routing = crate::policy::RoutingPolicy {
        prefix_lists: c.prefix_lists.get_ref().clone(),
        policies: c.policies.get_ref().clone(),
    };
    if let Err(e) = routing.validate() {
        f.error(c.policies.span(), e.to_string());
    }
    let mut policies: HashSet<String> = c.policies.get_ref().keys().cloned().collect();
    policies.extend(BUILTIN_POLICIES.iter().map(|s| s.to_string()));

    let mut names = HashSet::new();
    let mut addresses = HashSet::new();
    for n in &c.peer {
        check_neighbor(c, n, false, &policies, &mut f);
        if let Some(a) = &n.address
            && !addresses.insert(*a.get_ref())
        {
            f.error(
                a.span(),
                format!("another peer has address {}", a.get_ref()),
            );
        }
    }
    for n in &c.dynamic_neighbors {
        check_neighbor(c, n, true, &policies, &mut f);
    }
    for n in c.peer.iter().chain(&c.dynamic_neighbors) {
        if !names.insert(n.name.get_ref().clone()) {
            f.error(
                n.name.span(),
                format!(
                    "another peer or dynamic-neighbors group is named {}",
                    n.name.get_ref()
                ),
            );
        }
    }
    for a in &c.aggregate {
        for to in &a.suppress_to {
            if !names.contains(to.get_ref()) {
                f.error(to.span(), format!("no peer named {}", to.get_ref()));
            }
        }
        let p = a.prefix.get_ref();
        let host = if p.addr().is_ipv4() { 32 } else { 128 };
        if p.prefix_len() == host {
            f.error(
                a.prefix.span(),
                format!("{p} is a host route: it aggregates nothing"),
            );
        }
    }
    f
}

fn check_dataplane(c: &Config, f: &mut Findings) {
    let dp = c.dataplane.get_ref();
    if dp.uplinks.is_empty() {
        f.error(
            c.dataplane.span(),
            "uplinks: at least one uplink interface is needed",
        );
    }
    let mut seen = HashSet::new();
    for u in &dp.uplinks {
        let name = u.get_ref();
        if name.is_empty() || name.len() > 15 || name.contains(['/', ' ']) {
            f.error(u.span(), format!("{name:?} is not an interface name"));
        } else if !seen.insert(name.clone()) {
            f.error(u.span(), format!("uplink {name} is listed twice"));
        }
    }
}

fn check_timers(t: &super::schema::Timers, f: &mut Findings) {
    let hold = t.hold();
    if hold != 0 && hold < 3 {
        f.error(
            t.hold.span(),
            format!("{hold}: must be 0 or at least 3 seconds (RFC 4271)"),
        );
    }
    if let Some(k) = &t.keepalive
        && hold != 0
        && *k.get_ref() >= hold
    {
        f.error(
            k.span(),
            format!("{}: must be less than hold {hold}", k.get_ref()),
        );
    }
    if *t.connect_retry.get_ref() == 0 {
        f.error(t.connect_retry.span(), "must be at least 1 second");
    }
}

fn check_neighbor(
    c: &Config,
    n: &Neighbor,
    dynamic: bool,
    policies: &HashSet<String>,
    f: &mut Findings,
) {
    let at = n.name.span();
    let name = n.name.get_ref();
    if dynamic {
        if n.range.is_none() {
            f.error(
                at.clone(),
                format!("dynamic-neighbors {name}: `range` is required"),
            );
        }
        match &n.remote_asn_range {
            None => f.error(
                at.clone(),
                format!("dynamic-neighbors {name}: `remote-asn-range` is required"),
            ),
            Some(r) => {
                if let Err(e) = parse_asn_range(r.get_ref()) {
                    f.error(r.span(), e);
                }
            }
        }
        for (present, key) in [
            (n.address.as_ref().map(Spanned::span), "address"),
            (n.remote_asn.as_ref().map(Spanned::span), "remote-asn"),
        ] {
            if let Some(span) = present {
                f.error(
                    span,
                    format!("`{key}` belongs to [[peer]]; a range uses `range`/`remote-asn-range`"),
                );
            }
        }
    } else {
        if n.address.is_none() {
            f.error(at.clone(), format!("peer {name}: `address` is required"));
        }
        if n.remote_asn.is_none() {
            f.error(at.clone(), format!("peer {name}: `remote-asn` is required"));
        }
        for (present, key) in [
            (n.range.as_ref().map(Spanned::span), "range"),
            (
                n.remote_asn_range.as_ref().map(Spanned::span),
                "remote-asn-range",
            ),
            (n.limit.as_ref().map(Spanned::span), "limit"),
        ] {
            if let Some(span) = present {
                f.error(span, format!("`{key}` belongs to [[dynamic-neighbors]]"));
            }
        }
    }
    if let Some(asn) = &n.remote_asn
        && *asn.get_ref() == 0
    {
        f.error(asn.span(), "0 is not a valid AS number");
    }
    if let Some(asn) = &n.local_asn
        && *asn.get_ref() == 0
    {
        f.error(asn.span(), "0 is not a valid AS number");
    }
    if let (Some(p), Some(pf)) = (&n.password, &n.password_file) {
        f.error(pf.span(), "give `password` or `password-file`, not both");
        let _ = p;
    }
    if let Some(p) = &n.password
        && p.get_ref().len() > 80
    {
        f.error(
            p.span(),
            "password: at most 80 octets (TCP_MD5SIG_MAXKEYLEN)",
        );
    }
    if let (Some(t), Some(m)) = (&n.ttl_security, &n.multihop) {
        f.error(m.span(), "`multihop` and `ttl-security` exclude each other");
        let _ = t;
    }
    if let Some(t) = &n.ttl_security
        && !(1..=254).contains(t.get_ref())
    {
        f.error(t.span(), "ttl-security: hops must be 1 to 254");
    }
    if let Some(t) = &n.timers {
        check_timers(t.get_ref(), f);
    }
    if let Some(mp) = &n.max_prefix {
        let m = mp.get_ref();
        if m.limit == 0 {
            f.error(mp.span(), "max-prefix.limit: must be at least 1");
        }
        if !(1..=100).contains(&m.warning_percent) {
            f.error(mp.span(), "max-prefix.warning-percent: must be 1 to 100");
        }
    }
    if n.families.get_ref().is_empty() {
        f.error(n.families.span(), "at least one family is needed");
    }
    for (policy, dir) in [(&n.import, "import"), (&n.export, "export")] {
        match policy {
            Some(p) if !policies.contains(p.get_ref()) => {
                f.error(p.span(), format!("no policy named {}", p.get_ref()));
            }
            Some(_) => {}
            None => {
                let local = n
                    .local_asn
                    .as_ref()
                    .map_or(*c.asn.get_ref(), |a| *a.get_ref());
                let ebgp = dynamic || n.remote_asn.as_ref().is_none_or(|a| *a.get_ref() != local);
                if ebgp {
                    f.warn(
                        at.clone(),
                        format!(
                            "{name}: no {dir} policy on an eBGP session: it {dir}s nothing (RFC 8212); set `{dir} = \"accept-all\"` to {dir} everything"
                        ),
                    );
                }
            }
        }
    }
}

/// Parses `4200000000-4200099999` or a single ASN into an inclusive range.
pub fn parse_asn_range(s: &str) -> Result<std::ops::RangeInclusive<u32>, String> {
    let parse = |x: &str| {
        x.trim()
            .parse::<u32>()
            .map_err(|_| format!("remote-asn-range {s:?}: {x:?} is not an AS number"))
    };
    let (lo, hi) = match s.split_once('-') {
        Some((a, b)) => (parse(a)?, parse(b)?),
        None => {
            let v = parse(s)?;
            (v, v)
        }
    };
    if lo == 0 || lo > hi {
        return Err(format!(
            "remote-asn-range {s:?}: must be LOW-HIGH with 0 < LOW <= HIGH"
        ));
    }
    Ok(lo..=hi)
}
