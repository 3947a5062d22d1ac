"""Statistics against numpy / scipy on the same arrays."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch
import xarray as xr

from lrsim.analysis import stats as stats_module
from lrsim.analysis.stats import STAT_NAMES, check_stats, describe, summary_stats
from lrsim.errors import ConfigError


def reference(sample: np.ndarray) -> dict[str, float]:
    """Every statistic of a 1-d sample from numpy and scipy directly."""
    out = {}
    for name, y in (("raw", sample), ("abs", np.abs(sample)), ("sq", sample ** 2)):
        out[f"{name}_mean"] = np.mean(y)
        out[f"{name}_var"] = np.var(y)
        out[f"{name}_median"] = np.median(y)
        out[f"{name}_q75"] = np.quantile(y, 0.75)
        out[f"{name}_norm"] = np.linalg.norm(y)
        out[f"{name}_skew"] = scipy.stats.skew(y)
        out[f"{name}_kurtosis"] = scipy.stats.kurtosis(y)
    return out


def reference_rows(x: np.ndarray, names=STAT_NAMES) -> np.ndarray:
    flat = x.reshape(-1, x.shape[-1])
    rows = [[reference(r)[n] for n in names] for r in flat]
    return np.asarray(rows).reshape(*x.shape[:-1], len(names))


@pytest.mark.parametrize("n", [1, 2, 7, 64, 1001])
def test_against_numpy_and_scipy(n):
    rng = np.random.default_rng(n)
    x = rng.gamma(2.0, size=(3, 2, n)) - 1.7  # skewed, both signs
    got = summary_stats(x)
    want = reference_rows(x)
    if n == 1:  # one value: no spread; scipy gives NaN shape statistics, lrsim 0
        shape = [i for i, s in enumerate(STAT_NAMES) if s.endswith(("skew", "kurtosis"))]
        assert np.all(got[..., shape] == 0)
        keep = [i for i in range(len(STAT_NAMES)) if i not in shape]
        np.testing.assert_allclose(got[..., keep], want[..., keep], rtol=1e-10, atol=1e-12)
    else:
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-12)


def test_compiled_kernel_equals_numpy_path(monkeypatch):
    x = np.random.default_rng(1).standard_t(3, size=(4, 5, 300))
    fast = summary_stats(x)
    monkeypatch.setattr(stats_module, "_FORCE_NUMPY", True)
    slow = summary_stats(x)
    np.testing.assert_allclose(fast, slow, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(fast, reference_rows(x), rtol=1e-9, atol=1e-12)


def test_subset_and_order_of_stats():
    x = np.random.default_rng(2).normal(size=(2, 50))
    names = ["sq_kurtosis", "raw_median", "abs_q75"]
    np.testing.assert_allclose(summary_stats(x, names), reference_rows(x, names), rtol=1e-10)


def test_torch_input_comes_back_as_torch():
    x = torch.randn(3, 40, dtype=torch.float32)
    out = summary_stats(x)
    assert isinstance(out, torch.Tensor) and out.shape == (3, len(STAT_NAMES))
    np.testing.assert_allclose(out.numpy(), reference_rows(x.double().numpy()), rtol=1e-7,
                               atol=1e-9)


def test_non_finite_entries():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(3, 30))
    x[0, 4] = np.nan
    x[1, 7] = np.inf
    strict = summary_stats(x)
    assert np.isnan(strict[:2]).all()
    np.testing.assert_allclose(strict[2], reference_rows(x[2:3])[0], rtol=1e-10)
    lenient = summary_stats(x, skipna=True)
    np.testing.assert_allclose(lenient[0], reference_rows(np.delete(x[0], 4)[None])[0],
                               rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(lenient[1], reference_rows(np.delete(x[1], 7)[None])[0],
                               rtol=1e-10, atol=1e-12)
    assert np.isnan(summary_stats(np.full((1, 5), np.nan), skipna=True)).all()


def test_constant_sample_is_finite():
    out = dict(zip(STAT_NAMES, summary_stats(np.full(20, 3.0)), strict=True))
    assert out["raw_mean"] == pytest.approx(3.0) and out["sq_median"] == pytest.approx(9.0)
    assert out["raw_var"] == 0 and out["raw_skew"] == 0 and out["raw_kurtosis"] == 0
    assert all(np.isfinite(v) for v in out.values())


@pytest.mark.parametrize("scale", [1e-150, 1e40, 1e150])
def test_extreme_magnitudes_do_not_overflow(scale):
    x = np.random.default_rng(4).normal(size=(2, 200))
    got = summary_stats(x * scale)
    power = {"mean": 1, "var": 2, "median": 1, "q75": 1, "norm": 1, "skew": 0, "kurtosis": 0}
    exponent = [power[s.split("_")[1]] * (2 if s.startswith("sq") else 1) for s in STAT_NAMES]
    with np.errstate(over="ignore", under="ignore"):
        want = reference_rows(x) * np.float64(scale) ** np.array(exponent)
    finite = np.isfinite(want) & (np.abs(want) > 1e-300)
    assert np.isfinite(got[finite]).all()
    np.testing.assert_allclose(got[finite], want[finite], rtol=1e-8)


def test_describe_names_the_sample_dimension():
    rng = np.random.default_rng(5)
    da = xr.DataArray(rng.normal(size=(4, 3, 25)), dims=("time", "layer", "neuron"),
                      coords={"layer": ["a", "b", "c"], "time": np.arange(4) * 10})
    out = describe(da.transpose("neuron", "time", "layer"), dim="neuron")
    assert out.dims == ("time", "layer", "stat")
    assert list(out["stat"].values) == list(STAT_NAMES)
    assert list(out["layer"].values) == ["a", "b", "c"]
    want = reference(da.sel(layer="b", time=20).values)["abs_kurtosis"]
    assert float(out.sel(layer="b", time=20, stat="abs_kurtosis")) == pytest.approx(want)
    with pytest.raises(ValueError, match="sample"):
        describe(da, dim="sample")


def test_check_stats():
    assert check_stats(None) == list(STAT_NAMES)
    assert check_stats(["abs_var"]) == ["abs_var"]
    with pytest.raises(ConfigError, match="unknown statistic.*'raw_mode'.*allowed"):
        check_stats(["raw_mode"])
    with pytest.raises(ConfigError, match="at least one"):
        check_stats([])
