"""Type stub for `sluicegate._core`, the Rust extension (keep in step with rust/src/py/)."""

__version__: str
