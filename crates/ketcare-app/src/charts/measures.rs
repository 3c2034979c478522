//! SVG charts (plotters): score trajectories with sessions marked and response/remission
//! labelled, and total MME per day over time.

use crate::measures::{CourseView, Marker};
use jiff::Span;
use jiff::civil::Date;
use ketcare_measures::Point;
use plotters::prelude::*;

const W: u32 = 760;
const H: u32 = 320;

fn day(base: Date, d: Date) -> f64 {
    base.until(d)
        .map(|s| f64::from(s.get_days()))
        .unwrap_or(0.0)
}

fn label(base: Date, x: f64) -> String {
    base.checked_add(Span::new().days(x.round() as i64))
        .map(|d| d.to_string())
        .unwrap_or_default()
}

fn x_range(dates: impl Iterator<Item = Date>) -> Option<(Date, f64)> {
    let v: Vec<Date> = dates.collect();
    let lo = *v.iter().min()?;
    let hi = *v.iter().max()?;
    Some((lo, day(lo, hi).max(1.0)))
}

fn empty(text: &str) -> String {
    empty_in(W, text)
}

fn empty_in(width: u32, text: &str) -> String {
    super::titled(
        format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"60\"><text x=\"10\" y=\"35\" font-family=\"sans-serif\" font-size=\"14\">{text}</text></svg>"
        ),
        text,
    )
}

/// The size and lettering of a trajectory chart.
#[derive(Debug, Clone, Copy)]
pub struct Layout {
    pub width: u32,
    pub height: u32,
    /// Axis labels and the legend, in px at the chart's own size.
    pub font: u32,
    /// Radius of each score's dot.
    pub dot: u32,
    /// At most this many dates along the x axis.
    pub x_labels: usize,
}

/// Staff pages (a wide screen).
pub const WIDE: Layout = Layout {
    width: W,
    height: H,
    font: 12,
    dot: 3,
    x_labels: 6,
};

/// The patient's own view, read on a phone: drawn narrow so it is shrunk little to fit a
/// 390-px screen, with larger letters and dots.
pub const PHONE: Layout = Layout {
    width: 400,
    height: 280,
    font: 15,
    dot: 5,
    x_labels: 3,
};

/// Score trajectories: one line per instrument, sessions (or dose orders) as vertical lines,
/// first response and remission of each course labelled.
pub fn trajectory_svg(
    series: &[(String, Vec<Point>)],
    markers: &[Marker],
    courses: &[CourseView],
    name: impl Fn(&str) -> String,
) -> String {
    trajectory_svg_in(WIDE, series, markers, courses, name)
}

/// [`trajectory_svg`] drawn in `layout`.
pub fn trajectory_svg_in(
    layout: Layout,
    series: &[(String, Vec<Point>)],
    markers: &[Marker],
    courses: &[CourseView],
    name: impl Fn(&str) -> String,
) -> String {
    let dates = series
        .iter()
        .flat_map(|(_, v)| v.iter().map(|p| p.date))
        .chain(markers.iter().map(|m| m.date));
    let Some((base, span)) = x_range(dates) else {
        return empty_in(layout.width, "No scores yet.");
    };
    let ymax = series
        .iter()
        .flat_map(|(_, v)| v.iter().map(|p| p.score))
        .max()
        .unwrap_or(1)
        .max(1);
    let mut out = String::new();
    let drawn = (|| -> Result<(), Box<dyn std::error::Error + '_>> {
        let root =
            SVGBackend::with_string(&mut out, (layout.width, layout.height)).into_drawing_area();
        root.fill(&WHITE)?;
        let font = f64::from(layout.font);
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(layout.font * 5 / 2)
            .y_label_area_size(layout.font * 4)
            .build_cartesian_2d(-0.5..span + 0.5, 0.0..f64::from(ymax) * 1.15)?;
        chart
            .configure_mesh()
            .x_labels((span as usize + 1).min(layout.x_labels))
            .x_label_formatter(&|x| label(base, *x))
            .y_label_formatter(&|y| {
                if y.fract().abs() < 1e-9 {
                    format!("{y:.0}")
                } else {
                    format!("{y:.1}")
                }
            })
            .label_style(("sans-serif", font))
            .y_desc("score")
            .draw()?;
        for m in markers {
            let x = day(base, m.date);
            chart.draw_series(LineSeries::new(
                [(x, 0.0), (x, f64::from(ymax) * 1.15)],
                RGBColor(150, 150, 150).stroke_width(1),
            ))?;
        }
        for (i, (id, pts)) in series.iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            let line: Vec<(f64, f64)> = pts
                .iter()
                .map(|p| (day(base, p.date), f64::from(p.score)))
                .collect();
            chart
                .draw_series(LineSeries::new(line.clone(), color.stroke_width(2)))?
                .label(name(id))
                .legend(move |(x, y)| {
                    PathElement::new([(x, y), (x + 16, y)], color.stroke_width(2))
                });
            chart.draw_series(
                line.iter()
                    .map(|&(x, y)| Circle::new((x, y), layout.dot, color.filled())),
            )?;
        }
        for c in courses {
            let o = &c.outcome;
            let at = |d: Date| {
                o.points
                    .iter()
                    .find(|p| p.date == d)
                    .map(|p| (day(base, d), f64::from(p.score)))
            };
            for (d, text) in [
                (o.first_response, "response"),
                (o.first_remission, "remission"),
            ] {
                if let Some(pt) = d.and_then(at) {
                    chart.draw_series(std::iter::once(Text::new(
                        text.to_string(),
                        (pt.0, pt.1 + f64::from(ymax) * 0.06),
                        ("sans-serif", 13).into_font().color(&BLACK),
                    )))?;
                }
            }
        }
        chart
            .configure_series_labels()
            .label_font(("sans-serif", font))
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
        Ok(())
    })();
    match drawn {
        Ok(()) => super::titled(out, "Questionnaire scores over time, with sessions marked"),
        Err(e) => {
            tracing::error!(error = %e, "drawing the trajectory chart");
            empty_in(layout.width, "The chart could not be drawn.")
        }
    }
}

/// Total MME per day over time (a step line).
pub fn mme_svg(timeline: &[(Date, f64)], today: Date) -> String {
    let Some((base, span)) = x_range(timeline.iter().map(|(d, _)| *d).chain([today])) else {
        return empty("No opioids recorded.");
    };
    if timeline.is_empty() {
        return empty("No opioids recorded.");
    }
    let ymax = timeline.iter().map(|(_, v)| *v).fold(1.0_f64, f64::max);
    let mut steps = Vec::new();
    let mut prev: Option<f64> = None;
    for (d, v) in timeline {
        let x = day(base, *d);
        if let Some(p) = prev {
            steps.push((x, p));
        }
        steps.push((x, *v));
        prev = Some(*v);
    }
    if let Some(p) = prev {
        steps.push((span, p));
    }
    let mut out = String::new();
    let drawn = (|| -> Result<(), Box<dyn std::error::Error + '_>> {
        let root = SVGBackend::with_string(&mut out, (W, 240)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(30)
            .y_label_area_size(44)
            .build_cartesian_2d(-0.5..span + 0.5, 0.0..ymax * 1.15)?;
        chart
            .configure_mesh()
            .x_labels((span as usize + 1).min(6))
            .x_label_formatter(&|x| label(base, *x))
            .y_desc("MME/day")
            .draw()?;
        chart.draw_series(LineSeries::new(steps, BLUE.stroke_width(2)))?;
        root.present()?;
        Ok(())
    })();
    match drawn {
        Ok(()) => super::titled(out, "Opioid dose in morphine milligram equivalents per day"),
        Err(e) => {
            tracing::error!(error = %e, "drawing the MME chart");
            empty("The chart could not be drawn.")
        }
    }
}
