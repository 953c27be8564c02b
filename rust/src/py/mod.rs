//! The Python binding: the only pyo3 code in the crate. Each submodule adapts one pure-Rust module
//! and registers itself from `_core` below; everything exported here appears in `_core.pyi`.

use pyo3::prelude::*;

mod buckets;
mod estimate;
mod http1;
mod jsonkeys;
mod leases;
mod limits;
mod scanner;

#[pymodule]
fn _core(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", crate::VERSION)?;
    buckets::init_pymodule(m)?;
    estimate::init_pymodule(m)?;
    http1::init_pymodule(m)?;
    jsonkeys::init_pymodule(m)?;
    leases::init_pymodule(m)?;
    limits::init_pymodule(m)?;
    scanner::init_pymodule(m)?;
    Ok(())
}
