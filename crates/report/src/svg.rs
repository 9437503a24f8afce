//! Line charts as SVG text, drawn in Rust: a pure function of the series, so a chart is the
//! same on every machine, unit-testable, and needs no charting library inlined into the page
//! (nothing to keep up to date, no licence to carry, no script to run before a plot shows).

use std::fmt::Write;

/// One line of a chart: a run's values of one metric, by step.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub name: String,
    /// Index into `COLOURS` (a run keeps its colour in every chart).
    pub colour: usize,
    pub points: Vec<(f64, f64)>,
}

/// Colours of the overlaid runs, in order (a colour-blind-safe palette).
pub const COLOURS: [&str; 8] = ["#0072b2", "#d55e00", "#009e73", "#cc79a7", "#e69f00", "#56b4e9", "#f0e442", "#000000"];

/// The smoothing levels a reader can pick; each chart carries a line per level.
pub const SMOOTHING: [f64; 4] = [0.0, 0.6, 0.8, 0.95];

const W: f64 = 360.0;
const H: f64 = 220.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 10.0;
const TOP: f64 = 24.0;
const BOTTOM: f64 = 30.0;

/// Exponential moving average with TensorBoard's debiasing:
/// `m_t = α·m_{t−1} + (1 − α)·y_t`, `s_t = m_t / (1 − α^t)` with `m_0 = 0`; α = 0 is the raw
/// series. Non-finite values are passed through without entering the average.
pub fn smooth(ys: &[f64], alpha: f64) -> Vec<f64> {
    let (mut m, mut weight) = (0.0, 0.0);
    ys.iter()
        .map(|&y| {
            if !y.is_finite() {
                return y;
            }
            m = alpha * m + (1.0 - alpha) * y;
            weight = alpha * weight + (1.0 - alpha);
            m / weight
        })
        .collect()
}

/// A tick label: short, without trailing zeros.
fn label(v: f64) -> String {
    if v == 0.0 {
        return "0".into();
    }
    let a = v.abs();
    if !(1e-3..1e5).contains(&a) {
        return format!("{v:.1e}");
    }
    let digits = if a >= 100.0 {
        0
    } else if a >= 1.0 {
        2
    } else {
        3
    };
    let s = format!("{v:.digits$}");
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    }
}

pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// An SVG line chart of `series` (several runs overlaid, a legend naming each that has data), with one
/// `<g class="smooth-K">` per level of `SMOOTHING` for the page to show one of. Returns `None`
/// when no series has a finite point (the chart would say nothing).
pub fn line_chart(title: &str, series: &[Series]) -> Option<String> {
    let finite = |p: &&(f64, f64)| p.0.is_finite() && p.1.is_finite();
    let all: Vec<(f64, f64)> = series.iter().flat_map(|s| s.points.iter().filter(finite).copied()).collect();
    if all.is_empty() {
        return None;
    }
    let (mut x0, mut x1) = all.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| (lo.min(p.0), hi.max(p.0)));
    let (mut y0, mut y1) = all.iter().fold((f64::MAX, f64::MIN), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
    if x1 == x0 {
        (x0, x1) = (x0 - 1.0, x1 + 1.0);
    }
    if y1 == y0 {
        let pad = if y0 == 0.0 { 1.0 } else { y0.abs() * 0.1 };
        (y0, y1) = (y0 - pad, y1 + pad);
    }
    let px = |x: f64| LEFT + (x - x0) / (x1 - x0) * (W - LEFT - RIGHT);
    let py = |y: f64| H - BOTTOM - (y - y0) / (y1 - y0) * (H - TOP - BOTTOM);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" font-family="sans-serif" role="img" data-title="{t}"><title>{t}</title><text x="{LEFT}" y="15" class="chart-title" font-size="12" font-weight="600">{t}</text>"#,
        t = escape(title)
    );
    // Axes and min / mid / max ticks.
    let (bx, by) = (H - BOTTOM, W - RIGHT);
    let _ = write!(svg, r##"<path class="axis" fill="none" stroke="#999" d="M{LEFT},{TOP}V{bx}H{by}"/>"##);
    for y in [y0, (y0 + y1) / 2.0, y1] {
        let _ = write!(
            svg,
            r##"<text class="tick" font-size="9" fill="#555" x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
            LEFT - 4.0,
            py(y) + 3.0,
            label(y)
        );
    }
    for x in [x0, x1] {
        let _ = write!(
            svg,
            r##"<text class="tick" font-size="9" fill="#555" x="{:.1}" y="{}" text-anchor="middle">{}</text>"##,
            px(x),
            H - BOTTOM + 14.0,
            label(x)
        );
    }
    let _ = write!(
        svg,
        r##"<text class="tick" font-size="9" fill="#555" x="{}" y="{}" text-anchor="middle">step</text>"##,
        (LEFT + W - RIGHT) / 2.0,
        H - 4.0
    );
    for (k, alpha) in SMOOTHING.iter().enumerate() {
        let _ = write!(svg, r#"<g class="smooth-{k}">"#);
        for s in series {
            let pts: Vec<(f64, f64)> = s.points.iter().filter(finite).copied().collect();
            let ys = smooth(&pts.iter().map(|p| p.1).collect::<Vec<_>>(), *alpha);
            let colour = COLOURS[s.colour % COLOURS.len()];
            if pts.is_empty() {
                continue;
            }
            if pts.len() == 1 {
                let _ = write!(
                    svg,
                    r#"<circle class="point" cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"/>"#,
                    px(pts[0].0),
                    py(ys[0])
                );
                continue;
            }
            let d: Vec<String> = pts.iter().zip(&ys).map(|(p, y)| format!("{:.1},{:.1}", px(p.0), py(*y))).collect();
            let _ = write!(
                svg,
                r#"<polyline class="line" fill="none" stroke="{colour}" stroke-width="1.5" points="{}" data-points="{}"/>"#,
                d.join(" "),
                pts.len()
            );
        }
        svg.push_str("</g>");
    }
    // Legend, one entry per run with data here.
    let drawn: Vec<&Series> = series.iter().filter(|s| s.points.iter().any(|p| finite(&p))).collect();
    for (i, s) in drawn.into_iter().enumerate() {
        let (x, y) = (LEFT + 8.0 + (i % 2) as f64 * 150.0, TOP + 10.0 + (i / 2) as f64 * 12.0);
        let colour = COLOURS[s.colour % COLOURS.len()];
        let _ = write!(
            svg,
            r##"<rect x="{x}" y="{}" width="10" height="3" fill="{colour}"/><text class="legend" font-size="9" fill="#555" x="{}" y="{}">{}</text>"##,
            y - 4.0,
            x + 14.0,
            y,
            escape(&s.name)
        );
    }
    svg.push_str("</svg>");
    Some(svg)
}

/// A chart of `line_chart` as a file of its own: the SVG namespace (inline SVG in HTML needs
/// none) and a style that shows smoothing level `level` only (the page's own style does that
/// there).
pub fn standalone(chart: &str, level: usize) -> String {
    let style = format!("<style>g[class^=\"smooth-\"]{{display:none}} g.smooth-{level}{{display:inline}}</style>");
    chart.replacen("<svg ", "<svg xmlns=\"http://www.w3.org/2000/svg\" ", 1).replacen(
        "<title>",
        &format!("{style}<title>"),
        1,
    )
}

#[cfg(test)]
#[path = "svg_tests.rs"]
mod tests;
