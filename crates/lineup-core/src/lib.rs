//! lineup-core: the sans-IO routing engine (see docs/ARCHITECTURE.md).
pub mod codec;
