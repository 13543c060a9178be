//! The built-in autoscaler: decisions from the inference servers' own
//! metrics (see `decide`), and the traffic simulator that exercises them.

pub mod decide;
#[cfg(test)]
mod simulator;
