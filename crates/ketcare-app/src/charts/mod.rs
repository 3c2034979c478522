//! SVG charts (plotters), shared by the pages and the CLI: a patient's score trajectory with
//! session markers and their opioid MME ([`measures`]), and simulated concentration curves
//! ([`pk`]).

pub mod measures;
pub mod pk;

pub use measures::{mme_svg, trajectory_svg};
pub use pk::svg as pk_svg;
