//! The Python face of `crate::http1`: `ResponseParser`, fed by the upstream client's protocol
//! with the bytes of one connection. Errors cross as `ValueError`.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict};

use crate::http1::{Http1Error, ResponseParser};

impl From<Http1Error> for PyErr {
    #[cold]
    fn from(err: Http1Error) -> PyErr {
        PyValueError::new_err(err.to_string())
    }
}

/// A head as Python sees it: (status, {lower-cased name: value}, keep_alive).
type PyHead<'py> = (u16, Bound<'py, PyDict>, bool);

/// An incremental HTTP/1.1 response parser (see `_core.pyi`).
#[pyclass(name = "ResponseParser", module = "sluicegate._core")]
pub struct PyResponseParser {
    inner: ResponseParser,
}

fn latin1(bytes: &[u8]) -> String {
    bytes.iter().map(|&b| b as char).collect()
}

#[pymethods]
impl PyResponseParser {
    #[new]
    #[pyo3(signature = (max_head = 65_536))]
    fn new(max_head: usize) -> Self {
        PyResponseParser {
            inner: ResponseParser::new(max_head),
        }
    }

    /// Feed bytes: (head or None, body bytes, done).
    fn feed<'py>(
        &mut self,
        py: Python<'py>,
        data: &[u8],
    ) -> PyResult<(Option<PyHead<'py>>, Bound<'py, PyBytes>, bool)> {
        let fed = self.inner.feed(data)?;
        let head = match fed.head {
            None => None,
            Some(h) => {
                let headers = PyDict::new(py);
                for (name, value) in &h.headers {
                    let value = latin1(value);
                    match headers.get_item(name)? {
                        Some(held) => {
                            let joined = format!("{}, {}", held.extract::<String>()?, value);
                            headers.set_item(name, joined)?;
                        }
                        None => headers.set_item(name, value)?,
                    }
                }
                Some((h.status, headers, h.keep_alive))
            }
        };
        Ok((head, PyBytes::new(py, &fed.body), fed.done))
    }

    /// The connection closed: completes a body read until close, else `ValueError`.
    fn eof(&mut self) -> PyResult<()> {
        Ok(self.inner.eof()?)
    }

    /// Ready for the next response on the same connection.
    fn reset(&mut self) {
        self.inner.reset();
    }

    /// Whether the message is complete.
    #[getter]
    fn done(&self) -> bool {
        self.inner.done()
    }

    /// Whether the message is complete and the connection can carry another request.
    #[getter]
    fn reusable(&self) -> bool {
        self.inner.reusable()
    }

    /// Whether the head has been read.
    #[getter]
    fn has_head(&self) -> bool {
        self.inner.has_head()
    }
}

/// Registers the class on `_core`.
pub fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyResponseParser>()?;
    Ok(())
}
