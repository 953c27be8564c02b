//! The token estimate's walk over a parsed request (`spend.estimate`): the text pieces of a body's
//! messages counted as tokens, attachments counted apart, without a Python call per value.

use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFrozenSet, PyList, PyString};

/// Estimated tokens of one text: a quarter of its ASCII characters (rounded up) plus one per other
/// character (`spend.estimate.text_tokens`).
fn text_tokens(text: &str) -> u64 {
    let bytes = text.as_bytes();
    let ascii = bytes.iter().filter(|b| **b < 0x80).count() as u64;
    let others = bytes.iter().filter(|b| **b >= 0xC0).count() as u64; // UTF-8 lead bytes
    ascii.div_ceil(4) + others
}

/// `(tokens, attachments, tool_inputs)` of `value` (see `_core.pyi`).
#[pyfunction]
fn estimate_walk<'py>(
    value: &Bound<'py, PyAny>,
    not_text: &Bound<'py, PyFrozenSet>,
    attachments: &Bound<'py, PyFrozenSet>,
) -> PyResult<(u64, u64, Vec<Bound<'py, PyAny>>)> {
    let mut tokens = 0u64;
    let mut attached = 0u64;
    let mut inputs: Vec<Bound<'py, PyAny>> = Vec::new();
    let mut stack: Vec<Bound<'py, PyAny>> = vec![value.clone()];
    while let Some(item) = stack.pop() {
        if let Ok(text) = item.cast::<PyString>() {
            tokens += match text.to_str() {
                Ok(text) => text_tokens(text),
                Err(_) => {
                    // Lone surrogates (no UTF-8 form): each is one character, as Python counts it.
                    let chars = text.len()? as u64;
                    let ascii = text.to_string_lossy().bytes().filter(|b| *b < 0x80).count() as u64;
                    ascii.div_ceil(4) + (chars - ascii)
                }
            };
        } else if let Ok(list) = item.cast::<PyList>() {
            stack.extend(list.iter());
        } else if let Ok(object) = item.cast::<PyDict>() {
            let mut skip_input = false;
            if let Some(kind) = object.get_item("type")? {
                if let Ok(kind) = kind.cast::<PyString>() {
                    if attachments.contains(kind)? {
                        attached += 1;
                        continue;
                    }
                    if kind.to_str().is_ok_and(|k| k == "tool_use") {
                        if let Some(input) = object.get_item("input")? {
                            if input.cast::<PyDict>().is_ok() {
                                inputs.push(input);
                                skip_input = true;
                            }
                        }
                    }
                }
            }
            for (key, child) in object.iter() {
                if skip_input
                    && key
                        .cast::<PyString>()
                        .is_ok_and(|k| k.to_str().is_ok_and(|k| k == "input"))
                {
                    continue;
                }
                if !not_text.contains(&key)? {
                    stack.push(child);
                }
            }
        }
    }
    Ok((tokens, attached, inputs))
}

/// Registers the function on `_core`.
pub fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(estimate_walk, m)?)?;
    Ok(())
}
