//! Reports across runs, the last stage: a finished run folder read back ([`run`]), several
//! runs side by side ([`compare`]: a leaderboard with significance flags) and the self-contained
//! CAP page ([`html`]: cost, accuracy, performance and the radar that places runs together).

pub mod compare;
pub mod html;
pub mod run;
