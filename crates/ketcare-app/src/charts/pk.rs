//! Concentration–time charts as SVG (plotters): one colour per regimen, the population's
//! 5th–95th percentile band shaded, the median solid, the typical person dashed, the effect site
//! (on an assumed ke0) dotted.

use ketcare_pk::SimResult;
use plotters::prelude::*;

const COLOURS: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
];

/// The chart of one or more results (first output of each model), `width × height` pixels.
/// `target_ng_ml` draws a horizontal line.
pub fn svg(results: &[SimResult], target_ng_ml: Option<f64>, width: u32, height: u32) -> String {
    let mut out = String::new();
    if let Err(e) = draw(&mut out, results, target_ng_ml, width, height) {
        return super::titled(
            format!(
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"{height}\"><text x=\"10\" y=\"20\">chart unavailable: {}</text></svg>",
                xml_escape(&e)
            ),
            "Chart unavailable",
        );
    }
    super::titled(out, "Predicted concentration over time")
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn draw(
    out: &mut String,
    results: &[SimResult],
    target: Option<f64>,
    w: u32,
    h: u32,
) -> Result<(), String> {
    let e = |e: &dyn std::fmt::Display| e.to_string();
    let root = SVGBackend::with_string(out, (w, h)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let tmax = results
        .iter()
        .filter_map(|r| r.times_min.last().copied())
        .fold(1.0, f64::max);
    let mut ymax: f64 = target.unwrap_or(0.0);
    for r in results {
        for (_, c) in r.typical.iter().take(1) {
            ymax = c.iter().copied().fold(ymax, f64::max);
        }
        if let Some(p) = &r.population {
            ymax = p.bands[0].p95.iter().copied().fold(ymax, f64::max);
        }
        if let Some(ce) = &r.effect_site {
            ymax = ce.iter().copied().fold(ymax, f64::max);
        }
    }
    let ymax = if ymax > 0.0 { ymax * 1.08 } else { 1.0 };
    let mut chart = ChartBuilder::on(&root)
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0.0..tmax, 0.0..ymax)
        .map_err(|x| e(&x))?;
    chart
        .configure_mesh()
        .x_desc("time (min)")
        .y_desc("plasma concentration (ng/mL)")
        .light_line_style(RGBColor(235, 235, 235))
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 14))
        .draw()
        .map_err(|x| e(&x))?;
    for (i, r) in results.iter().enumerate() {
        let col = COLOURS[i % COLOURS.len()];
        let label = r.label.clone().unwrap_or_else(|| r.model.id.clone());
        let t = &r.times_min;
        if let Some(p) = &r.population {
            let b = &p.bands[0];
            let upper: Vec<(f64, f64)> = t.iter().copied().zip(b.p95.iter().copied()).collect();
            let lower: Vec<(f64, f64)> =
                t.iter().copied().zip(b.p5.iter().copied()).rev().collect();
            let poly: Vec<(f64, f64)> = upper.into_iter().chain(lower).collect();
            chart
                .draw_series(std::iter::once(Polygon::new(poly, col.mix(0.18))))
                .map_err(|x| e(&x))?;
            chart
                .draw_series(LineSeries::new(
                    t.iter().copied().zip(b.median.iter().copied()),
                    col.stroke_width(2),
                ))
                .map_err(|x| e(&x))?
                .label(format!("{label}: median, 5–95% band (n = {})", p.subjects))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], col.stroke_width(2))
                });
        }
        if let Some((_, c)) = r.typical.first() {
            let series = DashedLineSeries::new(
                t.iter().copied().zip(c.iter().copied()),
                6,
                4,
                col.stroke_width(1),
            );
            let s = chart.draw_series(series).map_err(|x| e(&x))?;
            if r.population.is_none() {
                s.label(format!("{label}: typical")).legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], col.stroke_width(1))
                });
            }
        }
        if let Some(ce) = &r.effect_site {
            chart
                .draw_series(DashedLineSeries::new(
                    t.iter().copied().zip(ce.iter().copied()),
                    2,
                    3,
                    col.stroke_width(1),
                ))
                .map_err(|x| e(&x))?
                .label(format!("{label}: effect site (assumed ke0)"))
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 18, y)], col.stroke_width(1))
                });
        }
    }
    if let Some(tc) = target {
        chart
            .draw_series(LineSeries::new(
                vec![(0.0, tc), (tmax, tc)],
                BLACK.mix(0.5).stroke_width(1),
            ))
            .map_err(|x| e(&x))?
            .label(format!("{tc} ng/mL"))
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], BLACK.mix(0.5)));
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 13))
        .draw()
        .map_err(|x| e(&x))?;
    root.present().map_err(|x| e(&x))?;
    Ok(())
}
