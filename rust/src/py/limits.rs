//! The Python face of `crate::limit`: `SlidingWindow`, `InFlight`, the all-or-nothing
//! `acquire_all` and `finish_all`. Times are `int` ms from the caller's clock; errors cross as
//! `ValueError`.
//!
//! The `*_all` functions copy the counter handles out (cheap `Arc` clones) and run with the
//! interpreter attached (a few lines' arithmetic: detaching for it costs a thread switch when
//! another thread wants the interpreter, see `py::buckets`); the counters are `frozen` and `Sync`
//! (a short `Mutex` inside each, never held while calling back into Python).

use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::limit::{self, Counter, InFlight, LimitError, SlidingWindow, State};

impl From<LimitError> for PyErr {
    #[cold]
    fn from(err: LimitError) -> PyErr {
        PyValueError::new_err(err.to_string())
    }
}

type StateTuple = (i64, i64, i64, i64);

fn state_tuple(s: State) -> StateTuple {
    (s.counted, s.remaining, s.reset_ms, s.retry_after_ms)
}

/// One line's sliding window of slots (see `_core.pyi`).
#[pyclass(name = "SlidingWindow", module = "sluicegate._core", frozen)]
pub struct PySlidingWindow {
    inner: Arc<SlidingWindow>,
}

#[pymethods]
impl PySlidingWindow {
    #[new]
    #[pyo3(signature = (limit, window_ms, slot_ms = 1_000))]
    fn new(limit: i64, window_ms: i64, slot_ms: i64) -> PyResult<Self> {
        Ok(PySlidingWindow {
            inner: Arc::new(SlidingWindow::new(limit, window_ms, slot_ms)?),
        })
    }

    #[getter]
    fn limit(&self) -> i64 {
        self.inner.limit()
    }

    #[getter]
    fn window_ms(&self) -> i64 {
        self.inner.window_ms()
    }

    #[getter]
    fn slot_ms(&self) -> i64 {
        self.inner.slot_ms()
    }

    fn set_limit(&self, limit: i64) -> PyResult<()> {
        Ok(self.inner.set_limit(limit)?)
    }

    fn try_take(&self, cost: i64, now_ms: i64, enforce: bool) -> PyResult<(bool, bool, i64, i64)> {
        let t = self.inner.try_take(cost, now_ms, enforce)?;
        Ok((t.admitted, t.would_refuse, t.ticket, t.retry_after_ms))
    }

    fn adjust(&self, slot: i64, delta: i64, now_ms: i64) -> PyResult<()> {
        Ok(self.inner.adjust(slot, delta, now_ms)?)
    }

    fn state(&self, cost: i64, now_ms: i64) -> PyResult<StateTuple> {
        Ok(state_tuple(self.inner.state(cost, now_ms)?))
    }

    fn slot_count(&self, slot: i64, now_ms: i64) -> i64 {
        self.inner.slot_count(slot, now_ms)
    }

    fn is_empty(&self, now_ms: i64) -> bool {
        self.inner.is_empty(now_ms)
    }

    fn __repr__(&self) -> String {
        format!(
            "SlidingWindow(limit={}, window_ms={}, slot_ms={})",
            self.inner.limit(),
            self.inner.window_ms(),
            self.inner.slot_ms()
        )
    }
}

/// One line's requests in flight (see `_core.pyi`).
#[pyclass(name = "InFlight", module = "sluicegate._core", frozen)]
pub struct PyInFlight {
    inner: Arc<InFlight>,
}

#[pymethods]
impl PyInFlight {
    #[new]
    fn new(limit: i64, ttl_ms: i64) -> PyResult<Self> {
        Ok(PyInFlight {
            inner: Arc::new(InFlight::new(limit, ttl_ms)?),
        })
    }

    #[getter]
    fn limit(&self) -> i64 {
        self.inner.limit()
    }

    #[getter]
    fn ttl_ms(&self) -> i64 {
        self.inner.ttl_ms()
    }

    fn set_limit(&self, limit: i64) -> PyResult<()> {
        Ok(self.inner.set_limit(limit)?)
    }

    fn try_take(&self, cost: i64, now_ms: i64, enforce: bool) -> PyResult<(bool, bool, i64, i64)> {
        let t = self.inner.try_take(cost, now_ms, enforce)?;
        Ok((t.admitted, t.would_refuse, t.ticket, t.retry_after_ms))
    }

    fn release(&self, ticket: i64) {
        self.inner.release(ticket);
    }

    fn state(&self, cost: i64, now_ms: i64) -> PyResult<StateTuple> {
        Ok(state_tuple(self.inner.state(cost, now_ms)?))
    }

    fn __repr__(&self) -> String {
        format!("InFlight(limit={}, ttl_ms={})", self.inner.limit(), self.inner.ttl_ms())
    }
}

/// A counter from Python: either kind.
#[derive(FromPyObject)]
enum PyCounter<'py> {
    Window(Bound<'py, PySlidingWindow>),
    InFlight(Bound<'py, PyInFlight>),
}

enum Owned {
    Window(Arc<SlidingWindow>),
    InFlight(Arc<InFlight>),
}

fn handles(counters: &[PyCounter<'_>]) -> Vec<Owned> {
    counters
        .iter()
        .map(|c| match c {
            PyCounter::Window(w) => Owned::Window(Arc::clone(&w.get().inner)),
            PyCounter::InFlight(f) => Owned::InFlight(Arc::clone(&f.get().inner)),
        })
        .collect()
}

fn refs(owned: &[Owned]) -> Vec<Counter<'_>> {
    owned
        .iter()
        .map(|o| match o {
            Owned::Window(w) => Counter::Window(w),
            Owned::InFlight(f) => Counter::InFlight(f),
        })
        .collect()
}

/// Acquire on every counter or none: `(refused, would_refuse, tickets, states)` (see `_core.pyi`).
#[pyfunction]
#[pyo3(signature = (counters, costs, enforce_mask, now_ms))]
fn acquire_all(
    counters: Vec<PyCounter<'_>>,
    costs: Vec<i64>,
    enforce_mask: u64,
    now_ms: i64,
) -> PyResult<(i64, u64, Vec<i64>, Vec<StateTuple>)> {
    let owned = handles(&counters);
    let got = limit::acquire_all(&refs(&owned), &costs, enforce_mask, now_ms)?;
    // At most 64 lines, so the index always fits.
    let refused = got.refused.map_or(-1, |i| i64::try_from(i).unwrap_or(i64::MAX));
    let states = got.states.into_iter().map(state_tuple).collect();
    Ok((refused, got.would_refuse, got.tickets, states))
}

/// End a grant on every counter (see `_core.pyi`).
#[pyfunction]
fn finish_all(counters: Vec<PyCounter<'_>>, tickets: Vec<i64>, deltas: Vec<i64>, now_ms: i64) -> PyResult<()> {
    let owned = handles(&counters);
    limit::finish_all(&refs(&owned), &tickets, &deltas, now_ms)?;
    Ok(())
}

/// Register the limits classes and functions on `_core`.
pub(crate) fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PySlidingWindow>()?;
    m.add_class::<PyInFlight>()?;
    m.add_function(wrap_pyfunction!(acquire_all, m)?)?;
    m.add_function(wrap_pyfunction!(finish_all, m)?)?;
    m.add("MAX_COST", limit::MAX_COST)?;
    m.add("MAX_WINDOW_SLOTS", limit::MAX_WINDOW_SLOTS)?;
    Ok(())
}
