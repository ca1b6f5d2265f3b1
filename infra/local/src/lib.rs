//! The local stack: what `infra/dev run` starts on this machine. So far: the AWS emulator (moto
//! from the project's venv) and the resources `template.yaml` declares, created by reading the
//! template itself.

pub mod api;
pub mod stack;
