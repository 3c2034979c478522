//! A Kaplan-Meier curve with its 95 % band (plotters): the registry's durability of response.

use ketcare_research::survival::KaplanMeier;
use plotters::prelude::*;

const W: u32 = 640;
const H: u32 = 300;

/// The curve as steps, the band shaded, censored times ticked.
pub fn km_svg(km: &KaplanMeier, x_label: &str, title: &str) -> String {
    let mut out = String::new();
    let t_max = km.rows.last().map(|r| r.t).unwrap_or(1.0).max(1.0);
    let drawn = (|| -> Result<(), Box<dyn std::error::Error + '_>> {
        let root = SVGBackend::with_string(&mut out, (W, H)).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .margin(12)
            .x_label_area_size(34)
            .y_label_area_size(44)
            .build_cartesian_2d(0.0..t_max * 1.02, 0.0..1.02)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc("still responding")
            .draw()?;
        let steps = |f: &dyn Fn(&ketcare_research::survival::KmRow) -> f64| {
            let mut pts = Vec::with_capacity(km.rows.len() * 2);
            let mut prev = 1.0;
            for r in &km.rows {
                pts.push((r.t, prev));
                pts.push((r.t, f(r)));
                prev = f(r);
            }
            pts.push((t_max, prev));
            pts
        };
        let lower = steps(&|r| r.lower);
        let upper = steps(&|r| r.upper);
        let band: Vec<(f64, f64)> = upper
            .iter()
            .copied()
            .chain(lower.iter().rev().copied())
            .collect();
        chart.draw_series(std::iter::once(Polygon::new(
            band,
            RGBColor(31, 95, 168).mix(0.15),
        )))?;
        chart.draw_series(LineSeries::new(
            steps(&|r| r.s),
            RGBColor(31, 95, 168).stroke_width(2),
        ))?;
        let mut prev = 1.0;
        let mut ticks = Vec::new();
        for r in &km.rows {
            if r.censored > 0 {
                ticks.push((r.t, r.s.min(prev)));
            }
            prev = r.s;
        }
        chart.draw_series(ticks.into_iter().map(|(t, s)| {
            PathElement::new([(t, s - 0.02), (t, s + 0.02)], BLACK.stroke_width(1))
        }))?;
        root.present()?;
        Ok(())
    })();
    match drawn {
        Ok(()) => super::titled(out, title),
        Err(e) => {
            tracing::error!(error = %e, "drawing the survival chart");
            String::new()
        }
    }
}
