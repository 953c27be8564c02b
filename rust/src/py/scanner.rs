//! The Python face of `crate::scan`: `Scanner`, `StreamScanner`, `ScanError`, `builtin_entities`,
//! `default_entities`.
//!
//! Texts come in as `str` and are read through their cached UTF-8 view (no copy for a compact
//! ASCII string); findings go out as `(entity, start, end)` tuples in `str` character offsets, with
//! the entity names interned once per scanner. Scans of more than [`DETACH_BYTES`] run with the
//! interpreter detached so other threads keep going; smaller ones do not pay for the switch.
//! A `str` holding lone surrogates is scanned as if each were U+FFFD (same offsets).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyList, PyString, PyTuple};

use crate::scan::{self, Finding, Rules, ScanError as CoreScanError, Scanner, StreamFinding, StreamScanner};

pyo3::create_exception!(
    sluicegate._core,
    ScanError,
    PyValueError,
    "A scanner rule that cannot be compiled, or a stream used after `finish()`."
);

impl From<CoreScanError> for PyErr {
    #[cold]
    fn from(err: CoreScanError) -> PyErr {
        ScanError::new_err(err.to_string())
    }
}

/// Inputs longer than this (in UTF-8 bytes) are scanned with the interpreter detached.
const DETACH_BYTES: usize = 4096;

const DEFAULT_TEMPLATE: &str = "[REDACTED:{entity}]";

type Names = Arc<Vec<Py<PyString>>>;

fn utf8<'a>(text: &'a Bound<'_, PyString>) -> Cow<'a, str> {
    match text.to_str() {
        Ok(s) => Cow::Borrowed(s),
        // lone surrogates: one U+FFFD each, so character offsets are unchanged
        Err(_) => text.to_string_lossy(),
    }
}

fn findings_list<'py>(
    py: Python<'py>,
    names: &Names,
    found: impl ExactSizeIterator<Item = (u16, u64, u64)>,
) -> PyResult<Bound<'py, PyList>> {
    let items = found.map(|(e, s, t)| (names[usize::from(e)].clone_ref(py), s, t));
    PyList::new(py, items)
}

/// A compiled rule set (see `_core.pyi`).
#[pyclass(name = "Scanner", module = "sluicegate._core", frozen)]
pub struct PyScanner {
    inner: Scanner,
    names: Names,
}

impl PyScanner {
    /// `found` (byte offsets into `text`) as `scan_scored`'s list: (entity, start, end, confidence)
    /// in code points.
    fn scored_list<'py>(&self, py: Python<'py>, text: &str, mut found: Vec<Finding>) -> PyResult<Bound<'py, PyList>> {
        scan::char_offsets(text, &mut found);
        let items = found.iter().map(|f| {
            (
                self.names[usize::from(f.entity)].clone_ref(py),
                f.start as u64,
                f.end as u64,
                f.confidence,
            )
        });
        PyList::new(py, items)
    }

    fn scan_chars(&self, py: Python<'_>, text: &str) -> Vec<Finding> {
        let mut found = if text.len() > DETACH_BYTES {
            py.detach(|| self.inner.scan(text))
        } else {
            self.inner.scan(text)
        };
        scan::char_offsets(text, &mut found);
        found
    }
}

#[pymethods]
impl PyScanner {
    #[new]
    #[pyo3(
        signature = (entities = None, custom_patterns = Vec::new(), keywords = Vec::new(), min_confidence = None, allow = Vec::new()),
        text_signature = "(entities=None, custom_patterns=(), keywords=(), min_confidence=None, allow=())"
    )]
    fn new(
        py: Python<'_>,
        entities: Option<Vec<String>>,
        custom_patterns: Vec<(String, String)>,
        keywords: Vec<(String, Vec<String>)>,
        min_confidence: Option<BTreeMap<String, u8>>,
        allow: Vec<(String, Vec<String>)>,
    ) -> PyResult<Self> {
        let rules = Rules {
            entities,
            custom_patterns,
            keywords,
            min_confidence: min_confidence.unwrap_or_default().into_iter().collect(),
            allow,
        };
        let inner = py.detach(|| Scanner::new(&rules))?;
        let mut names = Vec::new();
        let mut id = 0u16;
        loop {
            let name = inner.entity_name(id);
            if name.is_empty() {
                break;
            }
            names.push(PyString::intern(py, name).unbind());
            id += 1;
        }
        Ok(PyScanner {
            inner,
            names: Arc::new(names),
        })
    }

    #[getter]
    fn entities(&self) -> Vec<&str> {
        self.inner.entities().collect()
    }

    /// The threshold of each compiled type, in `entities` order.
    #[getter]
    fn min_confidence<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        for (i, name) in self.inner.entities().enumerate() {
            out.set_item(name, self.inner.min_confidence(self.inner.entity_id(i)))?;
        }
        Ok(out)
    }

    #[getter]
    fn max_holdback(&self) -> usize {
        self.inner.max_holdback()
    }

    fn scan<'py>(&self, py: Python<'py>, text: &Bound<'py, PyString>) -> PyResult<Bound<'py, PyList>> {
        let s = utf8(text);
        let found = self.scan_chars(py, &s);
        findings_list(
            py,
            &self.names,
            found.iter().map(|f| (f.entity, f.start as u64, f.end as u64)),
        )
    }

    /// Every finding with its confidence, those below their threshold too.
    fn scan_scored<'py>(&self, py: Python<'py>, text: &Bound<'py, PyString>) -> PyResult<Bound<'py, PyList>> {
        let s = utf8(text);
        let found = if s.len() > DETACH_BYTES {
            py.detach(|| self.inner.scan_scored(&s))
        } else {
            self.inner.scan_scored(&s)
        };
        self.scored_list(py, &s, found)
    }

    /// The strings of the JSON document `data` with a finding (values, keys, long numbers, strings
    /// of JSON inside strings), each with its findings as `scan_scored` gives them, and whether one
    /// was an object key; None when it cannot decide (see `scan::json`).
    fn json_findings<'py>(&self, py: Python<'py>, data: &[u8]) -> PyResult<Option<(Bound<'py, PyDict>, bool)>> {
        let got = if data.len() > DETACH_BYTES {
            py.detach(|| scan::json_findings(&self.inner, data))
        } else {
            scan::json_findings(&self.inner, data)
        };
        let Some(got) = got else {
            return Ok(None);
        };
        let found = PyDict::new(py);
        for (text, findings) in got.found {
            found.set_item(&text, self.scored_list(py, &text, findings)?)?;
        }
        Ok(Some((found, got.in_a_key)))
    }

    /// True if a string value (or long number) of the JSON document `data` has a finding, or it
    /// cannot be ruled out (see `scan::json`).
    fn finds_in_json(&self, py: Python<'_>, data: &[u8]) -> bool {
        if data.len() > DETACH_BYTES {
            py.detach(|| scan::json_has_finding(&self.inner, data))
        } else {
            scan::json_has_finding(&self.inner, data)
        }
    }

    #[pyo3(signature = (text, replacement = DEFAULT_TEMPLATE), text_signature = "(self, /, text, replacement='[REDACTED:{entity}]')")]
    fn redact<'py>(
        &self,
        py: Python<'py>,
        text: &Bound<'py, PyString>,
        replacement: &str,
    ) -> PyResult<Bound<'py, PyTuple>> {
        let s = utf8(text);
        let mut found = if s.len() > DETACH_BYTES {
            py.detach(|| self.inner.scan(&s))
        } else {
            self.inner.scan(&s)
        };
        let out = if found.is_empty() {
            // nothing to redact: hand back the very same object
            text.clone()
        } else {
            PyString::new(py, &self.inner.apply(&s, &found, replacement))
        };
        scan::char_offsets(&s, &mut found);
        let list = findings_list(
            py,
            &self.names,
            found.iter().map(|f| (f.entity, f.start as u64, f.end as u64)),
        )?;
        PyTuple::new(py, [out.into_any(), list.into_any()])
    }

    #[pyo3(signature = (replacement = DEFAULT_TEMPLATE), text_signature = "(self, /, replacement='[REDACTED:{entity}]')")]
    fn stream(&self, replacement: &str) -> PyStreamScanner {
        PyStreamScanner {
            inner: self.inner.stream(replacement),
            names: Arc::clone(&self.names),
            out: String::new(),
            found: Vec::new(),
        }
    }

    fn __repr__(&self) -> String {
        format!("Scanner(entities={:?})", self.inner.entities().collect::<Vec<_>>())
    }
}

/// An incremental redactor (see `_core.pyi`).
#[pyclass(name = "StreamScanner", module = "sluicegate._core")]
pub struct PyStreamScanner {
    inner: StreamScanner,
    names: Names,
    out: String,
    found: Vec<StreamFinding>,
}

impl PyStreamScanner {
    fn result<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let text = PyString::new(py, &self.out);
        let list = findings_list(py, &self.names, self.found.iter().map(|f| (f.entity, f.start, f.end)))?;
        self.out.clear();
        self.found.clear();
        PyTuple::new(py, [text.into_any(), list.into_any()])
    }
}

#[pymethods]
impl PyStreamScanner {
    fn feed<'py>(&mut self, py: Python<'py>, chunk: &Bound<'py, PyString>) -> PyResult<Bound<'py, PyTuple>> {
        let s = utf8(chunk);
        let Self { inner, out, found, .. } = self;
        if s.len() > DETACH_BYTES {
            py.detach(|| inner.feed(&s, out, found))?;
        } else {
            inner.feed(&s, out, found)?;
        }
        self.result(py)
    }

    fn finish<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyTuple>> {
        let Self { inner, out, found, .. } = self;
        inner.finish(out, found);
        self.result(py)
    }

    /// Takes the findings below their threshold decided so far (their text was emitted as is).
    fn quiet<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let quiet = self.inner.take_quiet();
        findings_list(py, &self.names, quiet.iter().map(|f| (f.entity, f.start, f.end)))
    }
}

/// Names of every built-in entity type (the European national ids last).
#[pyfunction]
fn builtin_entities() -> Vec<&'static str> {
    scan::builtin_entities().collect()
}

/// Names of the built-in entity types a `Scanner()` without `entities` detects (all but the
/// opt-in `PERSON`, `ADDRESS` and `DATE_OF_BIRTH`).
#[pyfunction]
fn default_entities() -> Vec<&'static str> {
    scan::default_entities().collect()
}

/// Registers the scanner's classes and functions on `_core`.
pub fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyScanner>()?;
    m.add_class::<PyStreamScanner>()?;
    m.add("ScanError", m.py().get_type::<ScanError>())?;
    m.add("MAX_ALLOW_TERM_BYTES", scan::MAX_ALLOW_LEN)?;
    m.add_function(wrap_pyfunction!(builtin_entities, m)?)?;
    m.add_function(wrap_pyfunction!(default_entities, m)?)?;
    Ok(())
}
