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

/// The first structural problem of a JSON document: `("depth", offset)` for an array or object
/// nested more than `max_depth` levels deep, `("duplicate_key", offset)` for a repeated key, or
/// None (see `_core.pyi`).
#[pyfunction]
fn json_problem(py: Python<'_>, data: &[u8], max_depth: usize) -> Option<(&'static str, usize)> {
    use crate::jsonkeys::{first_problem, Problem};
    let found = if data.len() > DETACH_BYTES {
        py.detach(|| first_problem(data, max_depth))
    } else {
        first_problem(data, max_depth)
    };
    found.map(|p| match p {
        Problem::TooDeep(at) => ("depth", at),
        Problem::DuplicateKey(at) => ("duplicate_key", at),
    })
}

/// Registers the functions on `_core`.
pub fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(first_duplicate_key, m)?)?;
    m.add_function(wrap_pyfunction!(json_problem, m)?)?;
    Ok(())
}
