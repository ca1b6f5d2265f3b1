//! The evidence-intake function's handler, as a library: the Lambda binary (`main.rs`) runs it, and the
//! local stack calls the same handler.

pub mod handler;

#[cfg(test)]
mod tests;
