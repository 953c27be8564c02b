//! The Python face of `crate::limit::lease`: `Lease` (one instance's lease on a window line, its
//! fields read and written by the leased store's slow path) and the request path's two calls,
//! `lease_take` and `lease_finish`, which run the common case with no Python per line.

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyTuple};

use crate::limit::lease::{self, Lease};

/// One instance's lease on one window line (see `_core.pyi`).
#[pyclass(name = "Lease", module = "sluicegate._core")]
pub struct PyLease {
    inner: Lease,
    line: Py<PyAny>,
}

impl PyLease {
    /// Read what the lease needs of a `LimitLine`: its limit, window and kind.
    fn read_line(line: &Bound<'_, PyAny>) -> PyResult<(i64, i64, bool)> {
        let limit: i64 = line.getattr("limit")?.extract()?;
        let window_s: i64 = line.getattr("window_s")?.extract()?;
        let kind: String = line.getattr("kind")?.extract()?;
        if kind == "concurrent" {
            return Err(PyValueError::new_err(
                "a lease is on a window line (requests or tokens)",
            ));
        }
        Ok((limit, window_s, kind == "tokens"))
    }
}

#[pymethods]
impl PyLease {
    #[new]
    fn new(line: &Bound<'_, PyAny>) -> PyResult<Self> {
        let (limit, window_s, tokens) = Self::read_line(line)?;
        Ok(PyLease {
            inner: Lease::new(limit, window_s, tokens),
            line: line.clone().unbind(),
        })
    }

    #[getter]
    fn line(&self, py: Python<'_>) -> Py<PyAny> {
        self.line.clone_ref(py)
    }

    #[setter]
    fn set_line(&mut self, line: &Bound<'_, PyAny>) -> PyResult<()> {
        let (limit, window_s, tokens) = Self::read_line(line)?;
        (self.inner.limit, self.inner.window_s, self.inner.tokens) = (limit, window_s, tokens);
        self.line = line.clone().unbind();
        Ok(())
    }

    #[getter]
    fn slot(&self) -> i64 {
        self.inner.slot
    }
    #[setter]
    fn set_slot(&mut self, v: i64) {
        self.inner.slot = v;
    }
    #[getter]
    fn counted_slot(&self) -> i64 {
        self.inner.counted_slot
    }
    #[setter]
    fn set_counted_slot(&mut self, v: i64) {
        self.inner.counted_slot = v;
    }
    #[getter]
    fn room(&self) -> i64 {
        self.inner.room
    }
    #[setter]
    fn set_room(&mut self, v: i64) {
        self.inner.room = v;
    }
    #[getter]
    fn n_used(&self) -> i64 {
        self.inner.n_used
    }
    #[setter]
    fn set_n_used(&mut self, v: i64) {
        self.inner.n_used = v;
    }
    #[getter]
    fn n_prev(&self) -> i64 {
        self.inner.n_prev
    }
    #[getter]
    fn counted(&self) -> i64 {
        self.inner.counted
    }
    #[setter]
    fn set_counted(&mut self, v: i64) {
        self.inner.counted = v;
    }
    #[getter]
    fn reset_at(&self) -> i64 {
        self.inner.reset_at
    }
    #[setter]
    fn set_reset_at(&mut self, v: i64) {
        self.inner.reset_at = v;
    }
    #[getter]
    fn full_need(&self) -> i64 {
        self.inner.full_need
    }
    #[setter]
    fn set_full_need(&mut self, v: i64) {
        self.inner.full_need = v;
    }
    #[getter]
    fn retry_at(&self) -> i64 {
        self.inner.retry_at
    }
    #[setter]
    fn set_retry_at(&mut self, v: i64) {
        self.inner.retry_at = v;
    }

    /// What is owed per slot and not sent yet (a copy).
    #[getter]
    fn pending<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let out = PyDict::new(py);
        for (k, d) in &self.inner.pending {
            out.set_item(k, d)?;
        }
        Ok(out)
    }

    fn owe(&mut self, slot: i64, delta: i64) {
        self.inner.owe(slot, delta);
    }

    fn roll(&mut self, s: i64) {
        self.inner.roll(s);
    }

    fn full_for(&self, cost: i64, s: i64) -> bool {
        self.inner.full_for(cost, s)
    }

    fn adjustments(&self) -> String {
        self.inner.adjustments()
    }

    fn sent(&mut self, snapshot: &Bound<'_, PyDict>) -> PyResult<()> {
        let pairs = snapshot
            .iter()
            .map(|(k, d)| Ok((k.extract::<i64>()?, d.extract::<i64>()?)))
            .collect::<PyResult<Vec<_>>>()?;
        self.inner.sent(&pairs);
        Ok(())
    }

    fn state(&self, t: i64, slot_ms: i64) -> (i64, i64) {
        self.inner.state(t, slot_ms)
    }

    fn settle(&mut self, ticket: i64, delta: i64, s: i64) {
        self.inner.settle(ticket, delta, s);
    }

    fn __repr__(&self) -> String {
        format!(
            "Lease(slot={}, counted_slot={}, room={}, pending={:?})",
            self.inner.slot, self.inner.counted_slot, self.inner.room, self.inner.pending
        )
    }
}

fn borrow_all<'py>(leases: &Bound<'py, PyTuple>) -> PyResult<Vec<PyRefMut<'py, PyLease>>> {
    leases
        .iter()
        .map(|item| Ok(item.cast_into::<PyLease>()?.try_borrow_mut()?))
        .collect()
}

/// The slots each line is counted in, and each line's `(remaining, reset_ms)`.
type Taken<'py> = (Bound<'py, PyTuple>, Vec<(i64, i64)>);

/// `(tickets, states)` when every lease has room for its cost in slot `now_ms // slot_ms`, else
/// None with nothing taken (see `_core.pyi`).
#[pyfunction]
fn lease_take<'py>(
    py: Python<'py>,
    leases: &Bound<'py, PyTuple>,
    costs: Vec<i64>,
    now_ms: i64,
    slot_ms: i64,
) -> PyResult<Option<Taken<'py>>> {
    if slot_ms <= 0 {
        return Err(PyValueError::new_err("slot_ms must be positive"));
    }
    let mut held = borrow_all(leases)?;
    let mut refs: Vec<&mut Lease> = held.iter_mut().map(|l| &mut l.inner).collect();
    let Some(tickets) = lease::take_all(&mut refs, &costs, now_ms.div_euclid(slot_ms)) else {
        return Ok(None);
    };
    let states = refs.iter().map(|l| l.state(now_ms, slot_ms)).collect();
    Ok(Some((PyTuple::new(py, tickets)?, states)))
}

/// Settle a finished grant taken from `leases` (see `_core.pyi`).
#[pyfunction]
#[pyo3(signature = (leases, tickets, costs, actual_tokens, now_ms, slot_ms))]
fn lease_finish(
    leases: &Bound<'_, PyTuple>,
    tickets: Vec<i64>,
    costs: Vec<i64>,
    actual_tokens: Option<i64>,
    now_ms: i64,
    slot_ms: i64,
) -> PyResult<()> {
    if slot_ms <= 0 {
        return Err(PyValueError::new_err("slot_ms must be positive"));
    }
    if tickets.len() != leases.len() || costs.len() != leases.len() {
        return Err(PyValueError::new_err("one ticket and one cost per lease"));
    }
    let mut held = borrow_all(leases)?;
    let mut refs: Vec<&mut Lease> = held.iter_mut().map(|l| &mut l.inner).collect();
    let deltas = lease::finish_deltas(&refs, &costs, actual_tokens);
    let s = now_ms.div_euclid(slot_ms);
    for ((lease, ticket), delta) in refs.iter_mut().zip(tickets).zip(deltas) {
        lease.settle(ticket, delta, s);
    }
    Ok(())
}

/// Register the lease class and functions on `_core`.
pub(crate) fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyLease>()?;
    m.add_function(wrap_pyfunction!(lease_take, m)?)?;
    m.add_function(wrap_pyfunction!(lease_finish, m)?)?;
    Ok(())
}
