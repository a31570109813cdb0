//! Erlang C (M/M/c) and the staffing planner.
//!
//! Erlang C gives, for Poisson arrivals at rate λ, exponential handle times of mean 1/μ and
//! `c` operators serving one FIFO queue with no abandons: the chance a caller waits, the
//! average speed of answer (ASA) and the service level P(wait ≤ t). The simulator's M/M/c
//! test checks the whole federation against these numbers; the planner uses them to size
//! staffing and to compare one pooled queue across sites with separate per-site queues.

use serde::Serialize;
use std::fmt::Write;

/// Staffing searched up to this many operators above the offered load.
pub const STAFFING_SEARCH_EXTRA_MAX: u32 = 10_000;

/// Offered load in Erlangs: arrivals per second × mean handle time in seconds.
pub fn offered_load(arrivals_per_hour: f64, aht_s: f64) -> f64 {
    arrivals_per_hour / 3_600.0 * aht_s
}

/// Probability that a caller waits (Erlang C), for `c` operators and load `a` Erlangs.
/// Computed through the Erlang B recursion, which stays stable for thousands of operators.
pub fn erlang_c(c: u32, a: f64) -> f64 {
    if c == 0 || a >= c as f64 {
        return 1.0;
    }
    let mut b = 1.0;
    for k in 1..=c {
        b = a * b / (k as f64 + a * b);
    }
    let rho = a / c as f64;
    b / (1.0 - rho + rho * b)
}

/// Average speed of answer in seconds (infinite when the queue is unstable).
pub fn asa_s(c: u32, a: f64, aht_s: f64) -> f64 {
    if a >= c as f64 {
        return f64::INFINITY;
    }
    erlang_c(c, a) * aht_s / (c as f64 - a)
}

/// Service level: the share of callers answered within `t_s` seconds.
pub fn service_level(c: u32, a: f64, aht_s: f64, t_s: f64) -> f64 {
    if a >= c as f64 {
        return 0.0;
    }
    1.0 - erlang_c(c, a) * (-(c as f64 - a) * t_s / aht_s).exp()
}

/// The fewest operators that reach `target` (e.g. 0.8) within `t_s` seconds.
pub fn operators_needed(arrivals_per_hour: f64, aht_s: f64, target: f64, t_s: f64) -> u32 {
    let a = offered_load(arrivals_per_hour, aht_s);
    let start = a.floor() as u32;
    (start.max(1)..start + STAFFING_SEARCH_EXTRA_MAX)
        .find(|c| service_level(*c, a, aht_s, t_s) >= target)
        .unwrap_or(start + STAFFING_SEARCH_EXTRA_MAX)
}

/// Waits in an ideal M/M/c queue fed the same callers: `c` operators, one FIFO line, no
/// overhead anywhere (Kiefer–Wolfowitz: each caller in arrival order takes the operator who
/// frees first). `callers` are `(arrival_ms, talk_ms)` in arrival order; the waits come back
/// in the same order. With talk times fixed per caller, which idle operator takes a call does
/// not change any wait, so this is the exact reference for a sample path of the simulator.
pub fn fifo_waits_ms(servers: usize, callers: &[(u64, u64)]) -> Vec<u64> {
    use std::cmp::Reverse;
    use std::collections::BinaryHeap;
    let mut free_at: BinaryHeap<Reverse<u64>> = (0..servers.max(1)).map(|_| Reverse(0)).collect();
    let mut waits = Vec::with_capacity(callers.len());
    for &(arrival_ms, talk_ms) in callers {
        let Reverse(free) = free_at.pop().unwrap_or(Reverse(0));
        let start = free.max(arrival_ms);
        free_at.push(Reverse(start + talk_ms));
        waits.push(start - arrival_ms);
    }
    waits
}

#[derive(Debug, Clone, Serialize)]
pub struct SitePlan {
    pub arrivals_per_hour: f64,
    pub operators: u32,
    pub service_level: f64,
    pub asa_s: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    pub arrivals_per_hour: f64,
    pub aht_s: f64,
    pub target_service_level: f64,
    pub target_answer_s: f64,
    pub offered_load_erlangs: f64,
    /// One queue across every site (what Lineup does).
    pub pooled: SitePlan,
    /// The same traffic in separate per-site queues (what per-box `Queue()` gives).
    pub per_site: Vec<SitePlan>,
    pub per_site_total_operators: u32,
    pub operators_saved_by_pooling: i64,
    /// (operators, service level) around the pooled answer, for the plot.
    pub curve: Vec<(u32, f64)>,
}

/// Plans staffing; `site_shares` splits the arrivals between sites (they need not sum to 1:
/// they are normalised).
pub fn plan(arrivals_per_hour: f64, aht_s: f64, target: f64, t_s: f64, site_shares: &[f64]) -> Plan {
    let a = offered_load(arrivals_per_hour, aht_s);
    let c = operators_needed(arrivals_per_hour, aht_s, target, t_s);
    let site_plan = |rate: f64| {
        let c = operators_needed(rate, aht_s, target, t_s);
        let a = offered_load(rate, aht_s);
        SitePlan {
            arrivals_per_hour: rate,
            operators: c,
            service_level: service_level(c, a, aht_s, t_s),
            asa_s: asa_s(c, a, aht_s),
        }
    };
    let total: f64 = site_shares.iter().sum::<f64>().max(f64::MIN_POSITIVE);
    let per_site: Vec<SitePlan> = site_shares.iter().map(|s| site_plan(arrivals_per_hour * s / total)).collect();
    let per_site_total: u32 = per_site.iter().map(|p| p.operators).sum();
    let low = (a.floor() as u32 + 1).max(c.saturating_sub(8)).max(1);
    let curve = (low..=c + 6).map(|k| (k, service_level(k, a, aht_s, t_s))).collect();
    Plan {
        arrivals_per_hour,
        aht_s,
        target_service_level: target,
        target_answer_s: t_s,
        offered_load_erlangs: a,
        pooled: site_plan(arrivals_per_hour),
        per_site,
        per_site_total_operators: per_site_total,
        operators_saved_by_pooling: per_site_total as i64 - c as i64,
        curve,
    }
}

/// Plot size and margins (SVG user units).
const PLOT_WIDTH: f64 = 640.0;
const PLOT_HEIGHT: f64 = 400.0;
const PLOT_LEFT: f64 = 60.0;
const PLOT_RIGHT: f64 = 20.0;
const PLOT_TOP: f64 = 40.0;
const PLOT_BOTTOM: f64 = 50.0;

/// Maps operators (x) and service level (y) onto the plot area.
struct PlotScale {
    first_operators: f64,
    operators_span: f64,
}

impl PlotScale {
    fn new(plan: &Plan) -> Self {
        let (first, last) = match (plan.curve.first(), plan.curve.last()) {
            (Some(f), Some(l)) => (f.0 as f64, l.0 as f64),
            _ => (0.0, 1.0),
        };
        PlotScale { first_operators: first, operators_span: (last - first).max(1.0) }
    }

    fn x(&self, operators: f64) -> f64 {
        PLOT_LEFT + (operators - self.first_operators) / self.operators_span * (PLOT_WIDTH - PLOT_LEFT - PLOT_RIGHT)
    }

    fn y(&self, service_level: f64) -> f64 {
        PLOT_TOP + (1.0 - service_level.clamp(0.0, 1.0)) * (PLOT_HEIGHT - PLOT_TOP - PLOT_BOTTOM)
    }
}

/// Service level against staffing, as a hand-written SVG: the pooled curve, the target line
/// and the chosen staffing marked.
pub fn plot_svg(plan: &Plan) -> String {
    let scale = PlotScale::new(plan);
    let mut svg = String::new();
    plot_title(&mut svg, plan);
    plot_axes(&mut svg, plan, &scale);
    plot_curve(&mut svg, plan, &scale);
    svg.push_str("</svg>\n");
    svg
}

/// The SVG element, its background and the title line.
fn plot_title(svg: &mut String, plan: &Plan) {
    const W: f64 = PLOT_WIDTH;
    const H: f64 = PLOT_HEIGHT;
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="{W}" height="{H}" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="14">Service level ({:.0}% in {:.0} s) vs operators — {:.0} calls/h, AHT {:.0} s</text>"#,
        W / 2.0,
        plan.target_service_level * 100.0,
        plan.target_answer_s,
        plan.arrivals_per_hour,
        plan.aht_s
    );
}

/// Axes, the service-level grid every 10 %, operator labels and the target line.
fn plot_axes(svg: &mut String, plan: &Plan, scale: &PlotScale) {
    const W: f64 = PLOT_WIDTH;
    const H: f64 = PLOT_HEIGHT;
    const LEFT: f64 = PLOT_LEFT;
    const RIGHT: f64 = PLOT_RIGHT;
    const TOP: f64 = PLOT_TOP;
    const BOTTOM: f64 = PLOT_BOTTOM;
    let _ = writeln!(svg, r##"<path d="M{LEFT} {TOP} V{} H{}" stroke="#333" fill="none"/>"##, H - BOTTOM, W - RIGHT);
    for tenth in 0..=10 {
        let sl = tenth as f64 / 10.0;
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" x2="{}" y1="{y0:.1}" y2="{y0:.1}" stroke="#eee"/><text x="{}" y="{:.1}" text-anchor="end">{}%</text>"##,
            W - RIGHT,
            LEFT - 6.0,
            scale.y(sl) + 4.0,
            tenth * 10,
            y0 = scale.y(sl)
        );
    }
    for (c, _) in &plan.curve {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{c}</text>"#,
            scale.x(*c as f64),
            H - BOTTOM + 16.0
        );
    }
    let _ = writeln!(svg, r#"<text x="{}" y="{}" text-anchor="middle">operators</text>"#, W / 2.0, H - 12.0);
    let ty = scale.y(plan.target_service_level);
    let _ = writeln!(
        svg,
        r##"<line x1="{LEFT}" x2="{}" y1="{ty:.1}" y2="{ty:.1}" stroke="#c33" stroke-dasharray="6 4"/>"##,
        W - RIGHT
    );
}

/// The pooled curve, its points (the chosen staffing in red) and the operator totals.
fn plot_curve(svg: &mut String, plan: &Plan, scale: &PlotScale) {
    let points: Vec<String> =
        plan.curve.iter().map(|(c, sl)| format!("{:.1},{:.1}", scale.x(*c as f64), scale.y(*sl))).collect();
    let _ =
        writeln!(svg, r##"<polyline points="{}" fill="none" stroke="#2364aa" stroke-width="2"/>"##, points.join(" "));
    for (c, sl) in &plan.curve {
        let fill = if *c == plan.pooled.operators { "#c33" } else { "#2364aa" };
        let _ =
            writeln!(svg, r#"<circle cx="{:.1}" cy="{:.1}" r="3.5" fill="{fill}"/>"#, scale.x(*c as f64), scale.y(*sl));
    }
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}">pooled: {} operators; per-site queues: {}</text>"#,
        PLOT_LEFT + 10.0,
        PLOT_TOP + 16.0,
        plan.pooled.operators,
        plan.per_site_total_operators
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn textbook_example_matches() {
        // 360 calls/h, AHT 240 s: 24 Erlangs. Published tables: 29 operators reach ~80%
        // in 20 s... check the formula's shape against a hand computation instead.
        let a = offered_load(360.0, 240.0);
        assert!((a - 24.0).abs() < 1e-9);
        // Single server: Erlang C equals the utilisation.
        assert!((erlang_c(1, 0.5) - 0.5).abs() < 1e-12);
        // Two servers, a = 1: C = 1/3.
        assert!((erlang_c(2, 1.0) - 1.0 / 3.0).abs() < 1e-12);
        let c = operators_needed(360.0, 240.0, 0.8, 20.0);
        assert!(service_level(c, a, 240.0, 20.0) >= 0.8);
        assert!(service_level(c - 1, a, 240.0, 20.0) < 0.8);
    }

    /// The reference queue against the formulas over a long run (two million callers from a
    /// fixed seed): this pins both, so the simulator's M/M/c test can compare against either.
    #[test]
    fn the_ideal_fifo_queue_matches_erlang_c_over_a_long_run() {
        let (servers, aht_s, load) = (12usize, 120.0, 0.85);
        let a = load * servers as f64;
        let arrivals_per_s = a / aht_s;
        let mut dice = crate::rng::Dice::from_seed(7);
        let mut at_ms = 0u64;
        let callers: Vec<(u64, u64)> = (0..2_000_000)
            .map(|_| {
                at_ms += dice.exponential_ms(1_000.0 / arrivals_per_s);
                (at_ms, dice.exponential_ms(aht_s * 1_000.0))
            })
            .collect();
        let waits = fifo_waits_ms(servers, &callers);
        let counted = &waits[10_000..];
        let asa = counted.iter().sum::<u64>() as f64 / counted.len() as f64 / 1_000.0;
        let sl = counted.iter().filter(|w| **w <= 20_000).count() as f64 / counted.len() as f64;
        let (want_asa, want_sl) = (asa_s(servers as u32, a, aht_s), service_level(servers as u32, a, aht_s, 20.0));
        assert!((asa / want_asa - 1.0).abs() < 0.03, "ASA {asa:.3} s vs Erlang C {want_asa:.3} s");
        assert!((sl / want_sl - 1.0).abs() < 0.02, "SL {sl:.4} vs Erlang C {want_sl:.4}");
    }

    #[test]
    fn pooling_never_needs_more_operators_and_the_plot_is_svg() {
        let p = plan(600.0, 180.0, 0.8, 20.0, &[1.0, 1.0, 1.0]);
        assert!(p.operators_saved_by_pooling >= 0);
        assert!(p.pooled.service_level >= 0.8);
        let svg = plot_svg(&p);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("polyline"));
    }
}
