//! SVG charts (plotters), shared by the pages and the CLI: a patient's score trajectory with
//! session markers and their opioid MME ([`measures`]), simulated concentration curves
//! ([`pk`]), a session's timeline ([`timeline`]), and a response against predicted exposure
//! across the clinic's sessions ([`exposure`]), an advisory TCI schedule's curve ([`tci`]), and a Kaplan-Meier curve ([`survival`]).

pub mod exposure;
pub mod measures;
pub mod pk;
pub mod survival;
pub mod tci;
pub mod timeline;

pub use exposure::exposure_svg;
pub use measures::{mme_svg, trajectory_svg};
pub use pk::svg as pk_svg;
pub use survival::km_svg;
pub use tci::tci_svg;
pub use timeline::timeline_svg;

/// Gives an SVG chart its accessible name: `role="img"`, an `aria-label` and a `<title>` child,
/// so a screen reader announces what the chart shows.
pub fn titled(svg: String, title: &str) -> String {
    let Some(start) = svg.find("<svg") else {
        return svg;
    };
    let Some(len) = svg[start..].find('>') else {
        return svg;
    };
    let end = start + len;
    let t = title
        .replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;");
    let open = svg[start..end].replace(" role=\"img\"", "");
    format!(
        "{}{open} role=\"img\" aria-label=\"{t}\"><title>{t}</title>{}",
        &svg[..start],
        &svg[end + 1..]
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_chart_gets_its_name() {
        let s = super::titled(
            "<svg width=\"10\" role=\"img\"><g/></svg>".into(),
            "Scores & dates",
        );
        assert_eq!(
            s,
            "<svg width=\"10\" role=\"img\" aria-label=\"Scores &amp; dates\"><title>Scores &amp; dates</title><g/></svg>"
        );
    }
}
