//! corral: a PID-1 init and process supervisor for containers.
//!
//! The binary is a thin `main` over this library: [`config`] turns
//! `supervisor.toml` into a validated [`config::Config`], [`engine`] decides
//! what to do (pure state, no processes), and [`runtime`] is the event loop
//! that owns processes, signals, readiness checks and logs and does what the
//! engine decides. See `docs/architecture.md`.

pub mod config;
pub mod engine;
pub mod prep_profile;
pub mod prep_shm;
pub mod prep_x11;
pub mod runtime;
