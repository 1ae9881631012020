//! The machine a run happens on: the [`hardware`] table (spec peaks, power, prices), [`detect`]ion
//! of this host and GPU and their table rows, measured [`ceilings`] (bandwidth, matmul) with
//! their per-machine cache, the room left in memory ([`memory`]) and on disk ([`disk`]), and
//! moecap's folders ([`dirs`]).

pub mod cache;
pub mod ceilings;
pub mod compat_prices;
pub mod csv_table;
pub mod detect;
pub mod dirs;
pub mod disk;
pub mod energy;
pub mod hardware;
pub mod memory;
pub mod parts;
pub mod targets;
