//! The Python face of `crate::spend`: `Bucket`, the all-or-nothing `reserve_all`, `settle_all`,
//! `release_all`, and `window_at`. Amounts are `int` nano-USD; errors cross as `ValueError`.
//!
//! The `*_all` functions copy the bucket handles out (cheap `Arc` clones) and run the atomic
//! arithmetic with the interpreter attached: it takes well under a microsecond, and detaching for
//! it let another thread (granian's, the log writer) take the interpreter on every call, so the
//! event loop waited for it to be handed back (a thread switch per reserve and settle, measured
//! in BENCHMARKS.md). A `Bucket` is `frozen` and `Sync`, its state being atomics only, so a
//! free-threaded build needs no lock around it either.

use std::sync::Arc;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::spend::{self, Bucket, Modes, Outcome, SpendError, WindowKind};

impl From<SpendError> for PyErr {
    #[cold]
    fn from(err: SpendError) -> PyErr {
        PyValueError::new_err(err.to_string())
    }
}

/// One cap's counters in one window (see `_core.pyi`).
#[pyclass(name = "Bucket", module = "sluicegate._core", frozen)]
pub struct PyBucket {
    inner: Arc<Bucket>,
}

#[pymethods]
impl PyBucket {
    #[new]
    #[pyo3(signature = (limit_nusd, thresholds = Vec::new()))]
    fn new(limit_nusd: i64, thresholds: Vec<u32>) -> PyResult<Self> {
        Ok(PyBucket {
            inner: Arc::new(Bucket::new(limit_nusd, &thresholds)?),
        })
    }

    #[getter]
    fn limit_nusd(&self) -> i64 {
        self.inner.limit()
    }

    #[getter]
    fn spent_nusd(&self) -> i64 {
        self.inner.spent()
    }

    #[getter]
    fn reserved_nusd(&self) -> i64 {
        self.inner.snapshot().reserved
    }

    #[getter]
    fn used_nusd(&self) -> i64 {
        self.inner.used()
    }

    #[getter]
    fn available_nusd(&self) -> i64 {
        self.inner.available()
    }

    #[getter]
    fn thresholds(&self) -> Vec<u32> {
        self.inner.thresholds().to_vec()
    }

    #[getter]
    fn fired(&self) -> u64 {
        self.inner.fired()
    }

    fn snapshot(&self) -> (i64, i64, i64) {
        let s = self.inner.snapshot();
        (s.limit, s.spent, s.reserved)
    }

    fn reserve(&self, amount_nusd: i64) -> PyResult<bool> {
        Ok(self.inner.try_reserve(amount_nusd)?)
    }

    fn settle(&self, reserved_nusd: i64, actual_nusd: i64) -> PyResult<u64> {
        Ok(self.inner.settle(reserved_nusd, actual_nusd)?)
    }

    fn release(&self, amount_nusd: i64) -> PyResult<()> {
        Ok(self.inner.release(amount_nusd)?)
    }

    fn grow(&self, amount_nusd: i64) -> PyResult<()> {
        Ok(self.inner.grow(amount_nusd)?)
    }

    fn shrink(&self, amount_nusd: i64) -> PyResult<bool> {
        Ok(self.inner.shrink(amount_nusd)?)
    }

    fn set_limit(&self, limit_nusd: i64) -> PyResult<()> {
        Ok(self.inner.set_limit(limit_nusd)?)
    }

    fn __repr__(&self) -> String {
        let s = self.inner.snapshot();
        format!(
            "Bucket(limit_nusd={}, spent_nusd={}, reserved_nusd={})",
            s.limit, s.spent, s.reserved
        )
    }
}

fn handles(buckets: &[Bound<'_, PyBucket>]) -> Vec<Arc<Bucket>> {
    buckets.iter().map(|b| Arc::clone(&b.get().inner)).collect()
}

/// Reserve on every bucket or none; `(amount, -1, monitored)` or `(0, index, 0)` (see `_core.pyi`).
#[pyfunction]
#[pyo3(signature = (buckets, amount_nusd, enforce_mask = None, clamp_mask = 0, min_clamp_nusd = 0))]
fn reserve_all(
    buckets: Vec<Bound<'_, PyBucket>>,
    amount_nusd: i64,
    enforce_mask: Option<u64>,
    clamp_mask: u64,
    min_clamp_nusd: i64,
) -> PyResult<(i64, i64, u64)> {
    let owned = handles(&buckets);
    let modes = Modes {
        enforce: enforce_mask.unwrap_or(u64::MAX),
        clamp: clamp_mask,
        min_clamp: min_clamp_nusd,
    };
    let refs: Vec<&Bucket> = owned.iter().map(Arc::as_ref).collect();
    let outcome = spend::reserve_all(&refs, amount_nusd, modes)?;
    Ok(match outcome {
        Outcome::Reserved { amount, monitored } => (amount, -1, monitored),
        // At most 64 buckets, so the index always fits.
        Outcome::Refused { index } => (0, i64::try_from(index).unwrap_or(i64::MAX), 0),
    })
}

/// Settle a reservation on every bucket; the newly fired threshold mask of each.
#[pyfunction]
fn settle_all(buckets: Vec<Bound<'_, PyBucket>>, reserved_nusd: i64, actual_nusd: i64) -> PyResult<Vec<u64>> {
    let owned = handles(&buckets);
    let refs: Vec<&Bucket> = owned.iter().map(Arc::as_ref).collect();
    Ok(spend::settle_all(&refs, reserved_nusd, actual_nusd)?)
}

/// Release a reservation on every bucket.
#[pyfunction]
fn release_all(buckets: Vec<Bound<'_, PyBucket>>, amount_nusd: i64) -> PyResult<()> {
    let owned = handles(&buckets);
    let refs: Vec<&Bucket> = owned.iter().map(Arc::as_ref).collect();
    spend::release_all(&refs, amount_nusd)?;
    Ok(())
}

/// The window of kind `kind` containing the Unix time `unix_s`: `(id, start, end)`.
#[pyfunction]
fn window_at(kind: &str, unix_s: i64) -> PyResult<(String, Option<i64>, Option<i64>)> {
    let w = WindowKind::parse(kind)?.window_at(unix_s)?;
    Ok((w.id, w.start, w.end))
}

/// Register the spend classes and functions on `_core`.
pub(crate) fn init_pymodule(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyBucket>()?;
    m.add_function(wrap_pyfunction!(reserve_all, m)?)?;
    m.add_function(wrap_pyfunction!(settle_all, m)?)?;
    m.add_function(wrap_pyfunction!(release_all, m)?)?;
    m.add_function(wrap_pyfunction!(window_at, m)?)?;
    m.add("MAX_AMOUNT_NUSD", spend::MAX_AMOUNT_NUSD)?;
    Ok(())
}
