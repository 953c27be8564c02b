//! sluicegate-core: the CPU-bound hot path of the sluicegate gateway.
//!
//! The crate is split the way the boundary rule in the project's style guide asks: pure Rust
//! modules that know nothing of Python (so `cargo test` needs no interpreter), and `py/`, the only
//! place that touches pyo3, compiled when the `python` feature is on (maturin turns it on).

pub mod http1;
pub mod jsonkeys;
pub mod limit;
#[cfg(feature = "python")]
mod py;
pub mod scan;
pub mod spend;

/// The crate version, also exported to Python as `sluicegate._core.__version__`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

#[cfg(test)]
mod tests {
    #[test]
    fn version_is_semver() {
        let parts: Vec<&str> = super::VERSION.split('.').collect();
        assert_eq!(parts.len(), 3);
        assert!(parts.iter().all(|p| p.parse::<u32>().is_ok()));
    }
}
