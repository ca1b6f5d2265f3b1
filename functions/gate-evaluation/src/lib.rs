//! The gate-evaluation function's handler, as a library: the Lambda binary (`main.rs`) runs it, and the
//! local stack calls the same handler.
#![recursion_limit = "256"]

pub mod handler;

#[cfg(test)]
mod tests;
