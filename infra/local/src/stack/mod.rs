//! The AWS side of the local stack.

pub mod moto;
pub mod provision;
pub mod template;
