//! The AWS side of the local stack, the simulators, and [`local::LocalStack`] putting it together.

pub mod esm;
pub mod local;
pub mod moto;
pub mod platforms;
pub mod provision;
pub mod template;
