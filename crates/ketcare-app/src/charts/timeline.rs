//! The session timeline as SVG (plotters): one x axis in minutes from check-in shared by three
//! panels — the predicted plasma concentration of what was given (solid; a metabolite thinner;
//! the population band shaded where there is one; "as ordered" dashed, "if the current rate
//! continues" dashed where it differs from the order, and "if stopped now" dotted from now), the
//! vitals (lines; monitor readings as dots, manual entries as rings), and a
//! strip of scores, administrations and alarms. Administrations are drawn as grey vertical lines
//! and alarms as red ones across the upper panels.

use crate::sessions::timeline::{Series, Timeline};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

const GIVEN: RGBColor = RGBColor(31, 119, 180);
const METABOLITE: RGBColor = RGBColor(148, 103, 189);
const ORDERED: RGBColor = RGBColor(44, 160, 44);
const STOPPED: RGBColor = RGBColor(255, 127, 14);
const ALARM: RGBColor = RGBColor(214, 39, 40);
const GREY: RGBColor = RGBColor(150, 150, 150);
const VITALS: [(&str, RGBColor); 5] = [
    ("systolic (mmHg)", RGBColor(214, 39, 40)),
    ("diastolic (mmHg)", RGBColor(255, 152, 150)),
    ("heart rate (/min)", RGBColor(31, 119, 180)),
    ("SpO2 (%)", RGBColor(23, 190, 207)),
    ("resp. rate (/min)", RGBColor(44, 160, 44)),
];

/// The accessible name of the chart.
pub const TITLE: &str = "Session timeline: predicted plasma concentration (model prediction, advisory), vitals, scores, administrations and alarms";

type Res = Result<(), Box<dyn std::error::Error>>;
type Points = Vec<(f64, f64)>;

/// The timeline chart, `width × height` pixels, with its accessible name; its origin's clock
/// time is read in `zone`.
pub fn timeline_svg(t: &Timeline, zone: &jiff::tz::TimeZone, width: u32, height: u32) -> String {
    let mut out = String::new();
    let drawn = draw(&mut out, t, zone, width, height).map_err(|e| e.to_string());
    match drawn {
        Ok(()) => super::titled(out, TITLE),
        Err(e) => super::titled(
            format!(
                "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width}\" height=\"40\"><text x=\"10\" y=\"25\">timeline unavailable: {}</text></svg>",
                e.replace('&', "&amp;").replace('<', "&lt;")
            ),
            TITLE,
        ),
    }
}

/// Labels near the right edge sit left of their point, so the chart does not cut them.
fn anchor(x: f64, xmax: f64, v: VPos) -> Pos {
    if x > xmax * 0.85 {
        Pos::new(HPos::Right, v)
    } else {
        Pos::new(HPos::Left, v)
    }
}

fn within(s: &Series, from: f64, to: f64) -> Vec<(f64, f64)> {
    s.t_min
        .iter()
        .copied()
        .zip(s.ng_ml.iter().copied())
        .filter(|(x, _)| *x >= from - 1e-9 && *x <= to + 1e-9)
        .collect()
}

/// The value of a polyline (ascending x) at `x`, linearly interpolated; `None` outside it.
fn at(pts: &[(f64, f64)], x: f64) -> Option<f64> {
    let i = pts.iter().position(|p| p.0 >= x - 1e-9)?;
    let (x1, y1) = pts[i];
    if (x1 - x).abs() <= 1e-9 {
        return Some(y1);
    }
    let (x0, y0) = *pts.get(i.checked_sub(1)?)?;
    Some(y0 + (y1 - y0) * (x - x0) / (x1 - x0))
}

fn draw(out: &mut String, t: &Timeline, zone: &jiff::tz::TimeZone, w: u32, h: u32) -> Res {
    let root = SVGBackend::with_string(out, (w, h)).into_drawing_area();
    root.fill(&WHITE)?;
    let xmax = t.view_end_min.max(t.end_min).max(1.0);
    let h = f64::from(h);
    let (top, rest) = root.split_vertically((h * 0.46) as i32);
    let (mid, bottom) = rest.split_vertically((h * 0.34) as i32);
    concentration(&top, t, xmax)?;
    vitals(&mid, t, xmax)?;
    strip(&bottom, t, zone, xmax)?;
    root.present()?;
    Ok(())
}

const Y_AREA: u32 = 60;

fn concentration(area: &DrawingArea<SVGBackend, Shift>, t: &Timeline, xmax: f64) -> Res {
    let Some(c) = &t.concentration else {
        let mut chart = ChartBuilder::on(area)
            .margin(10)
            .caption("Predicted plasma concentration: none", ("sans-serif", 14))
            .x_label_area_size(0)
            .y_label_area_size(Y_AREA)
            .build_cartesian_2d(0.0..xmax, 0.0..1.0)?;
        chart.configure_mesh().disable_mesh().y_labels(0).draw()?;
        let note = t
            .concentration_note
            .clone()
            .unwrap_or_else(|| "no prediction".into());
        chart.draw_series(std::iter::once(Text::new(
            note,
            (0.0, 0.6),
            ("sans-serif", 13).into_font(),
        )))?;
        return Ok(());
    };
    let now_end = t.end_min;
    let mut ymax: f64 = 0.0;
    let mut grow = |pts: &[(f64, f64)]| {
        for (_, y) in pts {
            ymax = ymax.max(*y);
        }
    };
    let given: Vec<Vec<(f64, f64)>> = c.given.iter().map(|s| within(s, 0.0, now_end)).collect();
    given.iter().for_each(|g| grow(g));
    let proj = |p: &Option<crate::sessions::timeline::Projection>| -> Vec<(f64, f64)> {
        p.as_ref()
            .and_then(|p| p.series.first().map(|s| within(s, p.from_min, xmax)))
            .unwrap_or_default()
    };
    let ordered = proj(&c.as_ordered);
    let stopped = proj(&c.if_stopped_now);
    grow(&ordered);
    grow(&stopped);
    // While the pump runs at a rate other than the order's, where the current rate leads (the
    // given prediction's part after now) until the ordered dosing would end; at the ordered rate
    // it is the "as ordered" line.
    let until = c
        .as_ordered
        .as_ref()
        .map_or(xmax, |p| p.dosing_end_min.min(xmax));
    let current: Vec<(f64, f64)> = match (t.end_is, c.given.first()) {
        ("now", Some(s)) if c.if_stopped_now.is_some() => within(s, now_end, until),
        _ => Vec::new(),
    };
    let current = if current
        .iter()
        .any(|&(x, y)| at(&ordered, x).is_none_or(|o| (o - y).abs() > 0.005 * o.abs().max(y.abs())))
    {
        current
    } else {
        Vec::new()
    };
    grow(&current);
    let band: Option<(Points, Points)> = c.band.as_ref().map(|b| {
        let f = |v: &Vec<f64>| -> Vec<(f64, f64)> {
            b.t_min
                .iter()
                .copied()
                .zip(v.iter().copied())
                .filter(|(x, _)| *x <= now_end)
                .collect()
        };
        (f(&b.p95), f(&b.p5))
    });
    if let Some((hi, _)) = &band {
        grow(hi);
    }
    let ymax = if ymax > 0.0 { ymax * 1.1 } else { 1.0 };
    let mut chart = ChartBuilder::on(area)
        .margin(10)
        .caption(
            format!(
                "Predicted plasma concentration — {} (model prediction, advisory)",
                c.model_name
            ),
            ("sans-serif", 14),
        )
        .x_label_area_size(22)
        .y_label_area_size(Y_AREA)
        .build_cartesian_2d(0.0..xmax, 0.0..ymax)?;
    chart
        .configure_mesh()
        .y_desc("ng/mL")
        .light_line_style(RGBColor(238, 238, 238))
        .label_style(("sans-serif", 12))
        .draw()?;
    for a in &t.administrations {
        chart.draw_series(LineSeries::new(
            [(a.t_min, 0.0), (a.t_min, ymax)],
            GREY.mix(0.6).stroke_width(1),
        ))?;
    }
    if let Some((hi, lo)) = band {
        let poly: Vec<(f64, f64)> = hi.into_iter().chain(lo.into_iter().rev()).collect();
        chart
            .draw_series(std::iter::once(Polygon::new(poly, GIVEN.mix(0.15))))?
            .label("population 5–95% band")
            .legend(|(x, y)| {
                Rectangle::new([(x, y - 4), (x + 16, y + 4)], GIVEN.mix(0.15).filled())
            });
    }
    for (i, (pts, s)) in given.iter().zip(&c.given).enumerate() {
        let (col, width) = if i == 0 { (GIVEN, 2) } else { (METABOLITE, 1) };
        chart
            .draw_series(LineSeries::new(pts.clone(), col.stroke_width(width)))?
            .label(format!("{}: given", s.output))
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], col.stroke_width(width)));
    }
    if !ordered.is_empty() {
        chart
            .draw_series(DashedLineSeries::new(
                ordered,
                6,
                4,
                ORDERED.stroke_width(2),
            ))?
            .label("if it runs as ordered")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], ORDERED.stroke_width(2)));
    }
    if !current.is_empty() {
        chart
            .draw_series(DashedLineSeries::new(current, 4, 3, GIVEN.stroke_width(2)))?
            .label("if the current rate continues")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], GIVEN.stroke_width(2)));
    }
    if !stopped.is_empty() {
        chart
            .draw_series(DashedLineSeries::new(
                stopped,
                2,
                3,
                STOPPED.stroke_width(2),
            ))?
            .label("if stopped now")
            .legend(|(x, y)| PathElement::new([(x, y), (x + 16, y)], STOPPED.stroke_width(2)));
    }
    if t.end_is == "now" {
        chart.draw_series(LineSeries::new(
            [(now_end, 0.0), (now_end, ymax)],
            BLACK.mix(0.7).stroke_width(1),
        ))?;
        chart.draw_series(std::iter::once(Text::new(
            " now ",
            (now_end, ymax * 0.04),
            ("sans-serif", 12)
                .into_font()
                .into_text_style(area)
                .pos(anchor(now_end, xmax, VPos::Bottom)),
        )))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 12))
        .draw()?;
    Ok(())
}

fn vitals(area: &DrawingArea<SVGBackend, Shift>, t: &Timeline, xmax: f64) -> Res {
    let get = |i: usize, v: &crate::sessions::timeline::VitalPoint| match i {
        0 => v.systolic,
        1 => v.diastolic,
        2 => v.heart_rate,
        3 => v.spo2,
        _ => v.resp_rate,
    };
    let ymax = t
        .vitals
        .iter()
        .flat_map(|v| (0..5).filter_map(move |i| get(i, v)))
        .fold(0.0, f64::max);
    let ymax = if ymax > 0.0 { ymax * 1.1 } else { 1.0 };
    let mut chart = ChartBuilder::on(area)
        .margin(10)
        .caption(
            "Vitals (monitor feed: dots; manual entries: rings)",
            ("sans-serif", 14),
        )
        .x_label_area_size(22)
        .y_label_area_size(Y_AREA)
        .build_cartesian_2d(0.0..xmax, 0.0..ymax)?;
    chart
        .configure_mesh()
        .light_line_style(RGBColor(238, 238, 238))
        .label_style(("sans-serif", 12))
        .draw()?;
    for a in &t.alarms {
        chart.draw_series(LineSeries::new(
            [(a.t_min, 0.0), (a.t_min, ymax)],
            ALARM.mix(0.5).stroke_width(1),
        ))?;
    }
    if t.vitals.is_empty() {
        chart.draw_series(std::iter::once(Text::new(
            "no vitals recorded",
            (0.0, ymax * 0.6),
            ("sans-serif", 13).into_font(),
        )))?;
    }
    for (i, (name, col)) in VITALS.iter().enumerate() {
        let pts: Vec<(f64, f64, bool)> = t
            .vitals
            .iter()
            .filter(|v| v.t_min <= xmax)
            .filter_map(|v| get(i, v).map(|y| (v.t_min, y, v.source == "monitor")))
            .collect();
        if pts.is_empty() {
            continue;
        }
        let col = *col;
        chart
            .draw_series(LineSeries::new(
                pts.iter().map(|(x, y, _)| (*x, *y)),
                col.stroke_width(1),
            ))?
            .label(*name)
            .legend(move |(x, y)| PathElement::new([(x, y), (x + 16, y)], col.stroke_width(2)));
        chart.draw_series(pts.iter().map(|&(x, y, monitor)| {
            if monitor {
                Circle::new((x, y), 2, col.filled())
            } else {
                Circle::new((x, y), 4, col.stroke_width(1))
            }
        }))?;
    }
    chart
        .configure_series_labels()
        .background_style(WHITE.mix(0.85))
        .border_style(RGBColor(200, 200, 200))
        .position(SeriesLabelPosition::UpperRight)
        .label_font(("sans-serif", 12))
        .draw()?;
    Ok(())
}

fn strip(
    area: &DrawingArea<SVGBackend, Shift>,
    t: &Timeline,
    zone: &jiff::tz::TimeZone,
    xmax: f64,
) -> Res {
    let mut chart = ChartBuilder::on(area)
        .margin(10)
        .x_label_area_size(34)
        .y_label_area_size(Y_AREA)
        .build_cartesian_2d(0.0..xmax, 0.0..3.0)?;
    chart
        .configure_mesh()
        .disable_y_mesh()
        .y_labels(4)
        .y_label_formatter(&|y: &f64| match y.round() as i64 {
            0 => "alarms".into(),
            1 => "given".into(),
            2 => "scores".into(),
            _ => String::new(),
        })
        .x_desc(format!(
            "minutes from {} (check-in or the first event)",
            t.origin.to_zoned(zone.clone()).strftime("%Y-%m-%d %H:%M")
        ))
        .light_line_style(RGBColor(238, 238, 238))
        .label_style(("sans-serif", 12))
        .axis_desc_style(("sans-serif", 13))
        .draw()?;
    let font = ("sans-serif", 11).into_font();
    for s in t.scores.iter().filter(|s| s.t_min <= xmax) {
        let name = if s.kind == "moaas" { "MOAA/S" } else { "CADSS" };
        let y = if s.kind == "moaas" { 2.35 } else { 1.85 };
        chart.draw_series(std::iter::once(Circle::new(
            (s.t_min, y),
            3,
            BLACK.filled(),
        )))?;
        chart.draw_series(std::iter::once(Text::new(
            format!("{name} {}", s.value),
            (s.t_min, y + 0.3),
            font.clone()
                .into_text_style(area)
                .pos(anchor(s.t_min, xmax, VPos::Top)),
        )))?;
    }
    for (i, a) in t
        .administrations
        .iter()
        .filter(|a| a.t_min <= xmax)
        .enumerate()
    {
        let y = if i % 2 == 0 { 1.0 } else { 1.35 };
        chart.draw_series(std::iter::once(TriangleMarker::new(
            (a.t_min, 0.9),
            5,
            GREY.filled(),
        )))?;
        chart.draw_series(std::iter::once(Text::new(
            a.label.clone(),
            (a.t_min, y + 0.3),
            font.clone()
                .into_text_style(area)
                .pos(anchor(a.t_min, xmax, VPos::Top)),
        )))?;
    }
    for a in t.alarms.iter().filter(|a| a.t_min <= xmax) {
        chart.draw_series(std::iter::once(Cross::new(
            (a.t_min, 0.3),
            4,
            ALARM.stroke_width(2),
        )))?;
        chart.draw_series(std::iter::once(Text::new(
            format!("#{} {}", a.id, a.label),
            (a.t_min, 0.75),
            font.clone()
                .color(&ALARM)
                .pos(anchor(a.t_min, xmax, VPos::Top)),
        )))?;
    }
    Ok(())
}
