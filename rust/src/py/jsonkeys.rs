//! The Python face of `crate::jsonkeys`: `first_duplicate_key`.
//!
//! The document comes in as `bytes` and is read in place; documents of more than [`DETACH_BYTES`]
//! are read with the interpreter detached.

use pyo3::prelude::*;

/// Documents longer than this are read with the interpreter detached.
const DETACH_BYTES: usize = 65536;

/// The offset of the first repeated object key in a JSON document, or None (see `_core.pyi`).
#[pyfunction]
fn first_duplicate_key(py: Python<'_>, data: &[u8]) -> Option<usize> {
    if data.len() > DETACH_BYTES {
        py.detach(|| crate::jsonkeys::first_duplicate_key(data))
    } else {
        crate::jsonkeys::first_duplicate_key(data)
    }
}

/// Registers the function on `_core`.
pub fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(first_duplicate_key, m)?)?;
    Ok(())
}
