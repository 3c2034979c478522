//! A response against predicted Cmax (`/pk/exposure`): the sessions as points, the fitted line
//! and its 95% confidence band where there is one. Plain SVG with presentation attributes only
//! (no inline style, as the page's CSP requires), named for screen readers.

use crate::exposure::Fit;
use std::fmt::Write;

const W: f64 = 520.0;
const H: f64 = 300.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 44.0;

fn nice_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let span = (hi - lo).max(1e-9);
    let raw = span / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| span / s <= 6.0)
        .unwrap_or(10.0 * mag);
    let mut t = (lo / step).ceil() * step;
    let mut out = Vec::new();
    while t <= hi + step * 1e-9 {
        out.push(if t.abs() < step * 1e-9 { 0.0 } else { t });
        t += step;
    }
    out
}

fn label(v: f64) -> String {
    ketcare_core::units::trim_float((v * 100.0).round() / 100.0)
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The scatter of `points` (predicted Cmax ng/mL, response) with `fit`'s line and band, titled
/// `title` (its accessible name).
pub fn exposure_svg(points: &[(f64, f64)], fit: &Fit, y_label: &str, title: &str) -> String {
    let mut xs: Vec<f64> = points.iter().map(|p| p.0).collect();
    let mut ys: Vec<f64> = points.iter().map(|p| p.1).collect();
    if let Some(o) = &fit.ols {
        for b in &o.band {
            xs.push(b.cmax_ng_ml);
            ys.push(b.lower);
            ys.push(b.upper);
        }
    }
    let (mut x0, mut x1) = (0.0_f64, xs.iter().copied().fold(1.0_f64, f64::max));
    let (mut y0, mut y1) = (
        ys.iter().copied().fold(0.0_f64, f64::min),
        ys.iter().copied().fold(1.0_f64, f64::max),
    );
    x1 *= 1.05;
    let pad = (y1 - y0) * 0.05;
    y0 -= if y0 < 0.0 { pad } else { 0.0 };
    y1 += pad;
    x0 = x0.min(0.0);
    let px = |x: f64| LEFT + (x - x0) / (x1 - x0) * (W - LEFT - RIGHT);
    let py = |y: f64| H - BOTTOM - (y - y0) / (y1 - y0) * (H - TOP - BOTTOM);
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" class=\"exposure-chart\">"
    );
    // Axes and ticks.
    let _ = write!(
        s,
        "<g stroke=\"#444\" stroke-width=\"1\"><line x1=\"{LEFT}\" y1=\"{}\" x2=\"{}\" y2=\"{}\"/><line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{}\"/></g>",
        H - BOTTOM,
        W - RIGHT,
        H - BOTTOM,
        H - BOTTOM
    );
    s.push_str("<g font-family=\"sans-serif\" font-size=\"11\" fill=\"#222\">");
    for t in nice_ticks(x0, x1) {
        let _ = write!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{b}\" x2=\"{x:.1}\" y2=\"{b4}\" stroke=\"#444\"/><text x=\"{x:.1}\" y=\"{ty}\" text-anchor=\"middle\">{}</text>",
            label(t),
            x = px(t),
            b = H - BOTTOM,
            b4 = H - BOTTOM + 4.0,
            ty = H - BOTTOM + 16.0
        );
    }
    for t in nice_ticks(y0, y1) {
        let _ = write!(
            s,
            "<line x1=\"{l4}\" y1=\"{y:.1}\" x2=\"{LEFT}\" y2=\"{y:.1}\" stroke=\"#444\"/><text x=\"{tx}\" y=\"{ty:.1}\" text-anchor=\"end\">{}</text>",
            label(t),
            l4 = LEFT - 4.0,
            y = py(t),
            tx = LEFT - 6.0,
            ty = py(t) + 4.0
        );
    }
    let _ = write!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">Predicted Cmax (ng/mL)</text><text x=\"14\" y=\"{}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {})\">{}</text></g>",
        (LEFT + W - RIGHT) / 2.0,
        H - 8.0,
        (TOP + H - BOTTOM) / 2.0,
        (TOP + H - BOTTOM) / 2.0,
        esc(y_label)
    );
    if let Some(o) = &fit.ols {
        let upper: Vec<String> = o
            .band
            .iter()
            .map(|b| format!("{:.1},{:.1}", px(b.cmax_ng_ml), py(b.upper)))
            .collect();
        let lower: Vec<String> = o
            .band
            .iter()
            .rev()
            .map(|b| format!("{:.1},{:.1}", px(b.cmax_ng_ml), py(b.lower)))
            .collect();
        let _ = write!(
            s,
            "<polygon class=\"band\" points=\"{} {}\" fill=\"#1f77b4\" fill-opacity=\"0.18\" stroke=\"none\"/>",
            upper.join(" "),
            lower.join(" ")
        );
        if let (Some(a), Some(b)) = (o.band.first(), o.band.last()) {
            let _ = write!(
                s,
                "<line class=\"fit\" x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#1f77b4\" stroke-width=\"2\"/>",
                px(a.cmax_ng_ml),
                py(a.fitted),
                px(b.cmax_ng_ml),
                py(b.fitted)
            );
        }
    }
    for (x, y) in points {
        let _ = write!(
            s,
            "<circle class=\"point\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"#d62728\" stroke=\"#fff\" stroke-width=\"1\"/>",
            px(*x),
            py(*y)
        );
    }
    s.push_str("</svg>");
    super::titled(s, title)
}
