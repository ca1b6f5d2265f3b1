//! The AWS side of the local stack.

pub mod esm;
pub mod moto;
pub mod provision;
pub mod template;
