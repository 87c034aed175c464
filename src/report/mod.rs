//! The HTML reports: `run` (`dreamgym run`'s report.html), `efficiency` (`dreamgym
//! efficiency`'s), the SVG line charts and dot plots and the HTML helpers both use.

pub mod charts;
pub mod dots;
pub mod efficiency;
pub mod html;
pub mod run;
