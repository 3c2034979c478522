//! The predicted curve of an advisory TCI schedule (the simulate page's TCI panel): plasma, and
//! effect site where a ke0 was assumed, with the target as a line. Plain SVG with presentation
//! attributes only, named for screen readers.

use ketcare_pk::tci::TciResult;
use std::fmt::Write;

const W: f64 = 640.0;
const H: f64 = 280.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 16.0;
const TOP: f64 = 16.0;
const BOTTOM: f64 = 44.0;

fn label(v: f64) -> String {
    ketcare_core::units::trim_float((v * 100.0).round() / 100.0)
}

fn ticks(hi: f64) -> Vec<f64> {
    let raw = hi.max(1e-9) / 5.0;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * mag)
        .find(|s| hi / s <= 6.0)
        .unwrap_or(10.0 * mag);
    (0..)
        .map(|i| f64::from(i) * step)
        .take_while(|t| *t <= hi * (1.0 + 1e-9))
        .collect()
}

/// The curve of `r` against its target `target_ng_ml`.
pub fn tci_svg(r: &TciResult, target_ng_ml: f64, title: &str) -> String {
    let x1 = r.times_min.last().copied().unwrap_or(1.0).max(1e-9);
    let peak = r
        .plasma_ng_ml
        .iter()
        .chain(r.effect_ng_ml.iter().flatten())
        .copied()
        .fold(target_ng_ml, f64::max);
    let y1 = peak * 1.1;
    let px = |x: f64| LEFT + x / x1 * (W - LEFT - RIGHT);
    let py = |y: f64| H - BOTTOM - y / y1 * (H - TOP - BOTTOM);
    let mut s = String::new();
    let _ = write!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {W} {H}\" width=\"{W}\" height=\"{H}\" class=\"tci-chart\">"
    );
    let _ = write!(
        s,
        "<g stroke=\"#444\"><line x1=\"{LEFT}\" y1=\"{b}\" x2=\"{r}\" y2=\"{b}\"/><line x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{b}\"/></g><g font-family=\"sans-serif\" font-size=\"11\" fill=\"#222\">",
        b = H - BOTTOM,
        r = W - RIGHT
    );
    for t in ticks(x1) {
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{}</text>",
            px(t),
            H - BOTTOM + 16.0,
            label(t)
        );
    }
    for t in ticks(y1) {
        let _ = write!(
            s,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            LEFT - 6.0,
            py(t) + 4.0,
            label(t)
        );
    }
    let _ = write!(
        s,
        "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">Time (min)</text><text x=\"14\" y=\"{m:.1}\" text-anchor=\"middle\" transform=\"rotate(-90 14 {m:.1})\">ng/mL</text></g>",
        (LEFT + W - RIGHT) / 2.0,
        H - 8.0,
        m = (TOP + H - BOTTOM) / 2.0
    );
    let _ = write!(
        s,
        "<line class=\"target\" x1=\"{LEFT}\" y1=\"{y:.1}\" x2=\"{r}\" y2=\"{y:.1}\" stroke=\"#2ca02c\" stroke-dasharray=\"6 4\"/>",
        y = py(target_ng_ml),
        r = W - RIGHT
    );
    let line = |v: &[f64]| {
        r.times_min
            .iter()
            .zip(v)
            .map(|(t, c)| format!("{:.1},{:.1}", px(*t), py(*c)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let _ = write!(
        s,
        "<polyline class=\"plasma\" points=\"{}\" fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"2\"/>",
        line(&r.plasma_ng_ml)
    );
    if let Some(e) = &r.effect_ng_ml {
        let _ = write!(
            s,
            "<polyline class=\"effect-site\" points=\"{}\" fill=\"none\" stroke=\"#d62728\" stroke-width=\"2\" stroke-dasharray=\"3 3\"/>",
            line(e)
        );
    }
    s.push_str("</svg>");
    super::titled(s, title)
}
