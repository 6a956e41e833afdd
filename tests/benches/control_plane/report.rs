//! Medians over runs, the per-receiver summary lines and the RESULT line.

use std::{collections::BTreeMap, fmt::Write as _, time::Duration};

use crate::{measure::Run, receiver::Kind};

/// The medians of one receiver's runs at one feed size.
#[derive(Debug, Clone, Copy)]
pub struct Summary {
    /// Number of runs.
    pub runs: usize,
    /// Median receive time, seconds.
    pub receive_s: f64,
    /// Median peak RSS, bytes.
    pub peak_rss: u64,
    /// Median idle RSS, bytes.
    pub idle_rss: u64,
    /// Median withdrawal time, seconds.
    pub withdraw_s: f64,
}

/// The median (mean of the middle two for an even count); `None` for no values.
pub fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if !n.is_multiple_of(2) => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

fn median_of(runs: &[Run], f: impl Fn(&Run) -> f64) -> f64 {
    let mut v: Vec<f64> = runs.iter().map(f).collect();
    median(&mut v).unwrap_or(f64::NAN)
}

impl Summary {
    /// Medians of `runs` (at least one).
    pub fn of(runs: &[Run]) -> Summary {
        let secs = |d: Duration| d.as_secs_f64();
        Summary {
            runs: runs.len(),
            receive_s: median_of(runs, |r| secs(r.receive)),
            peak_rss: median_of(runs, |r| r.peak_rss as f64) as u64,
            idle_rss: median_of(runs, |r| r.idle_rss as f64) as u64,
            withdraw_s: median_of(runs, |r| secs(r.withdraw)),
        }
    }

    /// Peak RSS over routes: the whole process, as the "~95 MB RSS in all".
    pub fn bytes_per_route(&self, routes: u32) -> u64 {
        self.peak_rss / u64::from(routes.max(1))
    }

    /// Peak RSS above the idle process, over routes.
    pub fn marginal_bytes_per_route(&self, routes: u32) -> u64 {
        self.peak_rss.saturating_sub(self.idle_rss) / u64::from(routes.max(1))
    }
}

/// One measured run, as printed while the benchmark goes.
pub fn run_line(
    kind: Kind,
    run_no: usize,
    runs: usize,
    routes: u32,
    r: &Run,
    load: &str,
) -> String {
    let s = r.receive.as_secs_f64();
    format!(
        "  {kind:<4} run {run_no}/{runs}: received in {s:.3} s (-{:.3}; {} routes/s; feeder \
         done after {:.3} s; {} polls), peak RSS {} ({} B/route, {} above idle {}), \
         withdrawn in {:.3} s (-{:.3}; peak RSS by then {}); load {load}",
        r.receive_window.as_secs_f64(),
        thousands(rate(routes, s)),
        r.feeder_sent.as_secs_f64(),
        r.polls,
        mb(r.peak_rss),
        r.peak_rss / u64::from(routes),
        r.peak_rss.saturating_sub(r.idle_rss) / u64::from(routes),
        mb(r.idle_rss),
        r.withdraw.as_secs_f64(),
        r.withdraw_window.as_secs_f64(),
        mb(r.peak_rss_after_withdraw),
    )
}

/// The table of medians for one feed size.
pub fn table(routes: u32, summaries: &BTreeMap<Kind, Summary>) -> String {
    let mut out = format!(
        "{} routes, medians:\n  receiver  runs  receive_s  routes/s     peak_RSS   B/route  \
         B/route_above_idle  withdraw_s\n",
        thousands(u64::from(routes))
    );
    for (kind, s) in summaries {
        let _ = writeln!(
            out,
            "  {:<8}  {:>4}  {:>9.3}  {:>10}  {:>10}  {:>8}  {:>18}  {:>10.3}",
            kind.name(),
            s.runs,
            s.receive_s,
            thousands(rate(routes, s.receive_s)),
            mb(s.peak_rss),
            s.bytes_per_route(routes),
            s.marginal_bytes_per_route(routes),
            s.withdraw_s,
        );
    }
    out
}

/// The machine-readable line of the issue, exactly; `None` unless ours, BIRD and FRR
/// were all measured (no figure is ever made up).
pub fn result_line(routes: u32, summaries: &BTreeMap<Kind, Summary>) -> Option<String> {
    let ours = summaries.get(&Kind::Ours)?;
    let bird = summaries.get(&Kind::Bird)?;
    let frr = summaries.get(&Kind::Frr)?;
    Some(format!(
        "RESULT control-plane n={routes} ours_s={:.2} bird_s={:.2} frr_s={:.2} \
         ours_vs_bird={:.2} ours_bytes_per_route={} bird_bytes_per_route={} \
         ours_withdraw_s={:.2} bird_withdraw_s={:.2}",
        ours.receive_s,
        bird.receive_s,
        frr.receive_s,
        ours.receive_s / bird.receive_s,
        ours.bytes_per_route(routes),
        bird.bytes_per_route(routes),
        ours.withdraw_s,
        bird.withdraw_s,
    ))
}

/// Routes per second.
pub fn rate(routes: u32, secs: f64) -> u64 {
    if secs > 0.0 {
        (f64::from(routes) / secs) as u64
    } else {
        0
    }
}

/// `1234567` as `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Bytes as `95.1 MB` (10^6).
pub fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}
