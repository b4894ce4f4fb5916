//! Draws how an adaptive limit follows a server whose capacity moves
//! 20 -> 50 -> 10 -> 30: the limit, the requests in flight and the
//! capacity over 8 simulated seconds (`Gradient`, on a `ManualClock`, so
//! it runs in a fraction of a second), next to a fixed limit of 20.
//!
//! ```text
//! cargo run --example adaptive_plot            # writes docs/adaptive.svg
//! cargo run --example adaptive_plot -- out.svg
//! ```
//!
//! The simulated server is the one the tests use (tests/common/sim.rs):
//! flat latency below its capacity, growing above it, 429 above twice it.

#[path = "../tests/common/sim.rs"]
mod sim;

use limiters::{Gradient, Limiter, ManualClock};

const PHASES: [(u64, usize); 4] = [(0, 20), (2_000, 50), (4_000, 10), (6_000, 30)];
const TOTAL_MS: u64 = 8_000;
const CLIENTS: usize = 150;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "docs/adaptive.svg".into());
    let clock = ManualClock::new();
    let adaptive = Limiter::builder()
        .adaptive(Gradient::new().initial(20).max(200))
        .clock(clock.clone())
        .build()?;
    let ticks = sim::run(&adaptive, &clock, CLIENTS, &PHASES, TOTAL_MS);
    let fixed_clock = ManualClock::new();
    let fixed = Limiter::builder()
        .concurrency(20)
        .clock(fixed_clock.clone())
        .build()?;
    let fixed_ticks = sim::run(&fixed, &fixed_clock, CLIENTS, &PHASES, TOTAL_MS);
    let (ours, theirs) = (ticks.last().unwrap().ok, fixed_ticks.last().unwrap().ok);
    std::fs::write(&path, svg(&ticks, ours, theirs))?;
    println!("wrote {path}: goodput {ours} answers vs {theirs} with a fixed limit of 20");
    Ok(())
}

/// A hand-written SVG: one polyline per series, axes and a legend.
fn svg(ticks: &[sim::Tick], ours: u64, theirs: u64) -> String {
    let (w, h, left, top, bottom) = (800.0, 370.0, 50.0, 40.0, 40.0);
    let y_max = 70.0;
    let x = |ms: usize| left + ms as f64 * (w - left - 20.0) / ticks.len() as f64;
    let y = |v: f64| top + (h - top - bottom) * (1.0 - v / y_max);
    let line = |value: &dyn Fn(&sim::Tick) -> usize, color: &str, width: f64| {
        let points: Vec<String> = ticks
            .iter()
            .enumerate()
            .step_by(5)
            .map(|(i, t)| format!("{:.1},{:.1}", x(i), y(value(t) as f64)))
            .collect();
        format!(
            r#"<polyline fill="none" stroke="{color}" stroke-width="{width}" points="{}"/>"#,
            points.join(" ")
        )
    };
    let mut out = format!(
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{left}" y="18">Adaptive limit (Gradient) vs server capacity: {ours} answers, {theirs} with a fixed limit of 20</text>
"#
    );
    for v in (0..=70).step_by(10) {
        let yy = y(f64::from(v));
        out += &format!(
            r##"<line x1="{left}" x2="{}" y1="{yy:.1}" y2="{yy:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{v}</text>
"##,
            w - 20.0,
            left - 6.0,
            yy + 4.0
        );
    }
    for s in 0..=8 {
        let xx = x(s * 1_000);
        out += &format!(
            r#"<text x="{xx:.1}" y="{:.1}" text-anchor="middle">{s} s</text>
"#,
            h - bottom + 18.0
        );
    }
    out += &line(&|t| t.capacity, "#999", 4.0);
    out += &line(&|t| t.in_flight, "#6baed6", 1.0);
    out += &line(&|t| t.limit, "#d62728", 2.0);
    let legend = [
        ("capacity", "#999"),
        ("in flight", "#6baed6"),
        ("limit", "#d62728"),
    ];
    for (i, (name, color)) in legend.iter().enumerate() {
        let lx = w - 300.0 + i as f64 * 95.0;
        out += &format!(
            r#"<line x1="{lx}" x2="{}" y1="{top}" y2="{top}" stroke="{color}" stroke-width="3"/><text x="{}" y="{}">{name}</text>
"#,
            lx + 20.0,
            lx + 24.0,
            top + 4.0
        );
    }
    out + "</svg>\n"
}
