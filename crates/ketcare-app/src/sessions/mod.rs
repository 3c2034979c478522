//! Treatment sessions: scheduling from the verified order, commands, vitals ([`service`]); the
//! predicted curve of what a session gave ([`history`]); the session timeline — that curve with
//! its projections, vitals, scores, administrations and alarms on one axis ([`timeline`]);
//! questionnaires before a session and
//! the bounds of a session score ([`pre_measures`]). Sessions may use measures; measures reads
//! what sessions gave only through [`crate::given`].

pub mod history;
pub mod pre_measures;
pub mod service;
pub mod timeline;

pub use timeline::{Timeline, timeline};
