"""Partial and stratified Kendall tau (zcproxy.validate.partial): hand cases, brute force, invariants, edges."""
from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st

from zcproxy.validate import partial as P


def _brute_tau_b(a, b) -> float:
    """Kendall tau-b by explicit pair counting."""
    s = untied_a = untied_b = 0
    for i, j in itertools.combinations(range(len(a)), 2):
        da, db = np.sign(a[j] - a[i]), np.sign(b[j] - b[i])
        s += da * db
        untied_a += da != 0
        untied_b += db != 0
    return s / math.sqrt(untied_a * untied_b)


def test_hand_computed_partial():
    # tau_xy = 2/3, tau_xz = 2/3, tau_yz = 1/3 (6 pairs each, counted by hand):
    # (2/3 - 2/9) / sqrt((1 - 4/9)(1 - 1/9)) = (4/9) / (sqrt(40)/9) = 4 / sqrt(40)
    x, y, z = [1, 2, 3, 4], [1, 3, 2, 4], [1, 2, 4, 3]
    assert P.partial_kendall(x, y, z) == pytest.approx(4 / math.sqrt(40), abs=1e-12)


def test_hand_computed_partial_three_points():
    # tau_xy = 1/3, tau_xz = 1/3, tau_yz = -1/3: (1/3 + 1/9) / sqrt((8/9)(8/9)) = 1/2
    assert P.partial_kendall([1, 2, 3], [1, 3, 2], [2, 1, 3]) == pytest.approx(0.5, abs=1e-12)


def test_hand_computed_stratified():
    # stratum a: x 1,2,3 / y 1,3,2 -> tau (2 - 1)/3 = 1/3 over 3 pairs; stratum b: x 1,2 / y 2,1 -> -1 over 1 pair
    x, y, s = [1, 2, 3, 1, 2], [1, 3, 2, 2, 1], [0, 0, 0, 1, 1]
    out = P.stratified_kendall(x, y, s)
    assert out["kendall"] == pytest.approx((3 * (1 / 3) + 1 * (-1)) / 4, abs=1e-12)
    assert out["pairs"] == 4 and out["strata_used"] == 2 and out["strata"] == 2


def test_stratified_skips_singletons_and_all_tied_strata():
    # stratum 0: tau 1 over 3 pairs; stratum 1: one arch; stratum 2: x all tied (undefined)
    x, y, s = [1, 2, 3, 5, 7, 7], [1, 2, 3, 9, 1, 2], [0, 0, 0, 1, 2, 2]
    out = P.stratified_kendall(x, y, s)
    assert out == {"kendall": 1.0, "pairs": 3.0, "strata_used": 1, "strata": 3}
    assert np.isnan(P.stratified_kendall([1, 1, 2, 2], [1, 2, 3, 4], [0, 0, 1, 1])["kendall"])


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(5, 40), st.integers(2, 6))
def test_formula_against_brute_force(seed, n, levels):
    """Kendall's formula on pair-counted tau-b, and the inverse-matrix form of a 3-variable partial correlation."""
    rng = np.random.default_rng(seed)
    z = rng.integers(0, levels, n).astype(float)  # heavy ties, like the parameter count
    x = z + rng.normal(size=n)
    y = np.round(z + rng.normal(size=n), 1)
    txy, txz, tyz = _brute_tau_b(x, y), _brute_tau_b(x, z), _brute_tau_b(y, z)
    if not max(abs(txz), abs(tyz)) <= 1 - 1e-9:  # |tau| = 1, or NaN when z (or y) is constant
        with pytest.raises(P.PartialTauUndefined):
            P.partial_kendall(x, y, z)
        return
    expected = (txy - txz * tyz) / math.sqrt((1 - txz ** 2) * (1 - tyz ** 2))
    got = P.partial_kendall(x, y, z)
    assert got == pytest.approx(expected, abs=1e-10)
    matrix = np.array([[1, txy, txz], [txy, 1, tyz], [txz, tyz, 1]])
    if abs(np.linalg.det(matrix)) > 1e-9:  # a singular tau matrix has no inverse to compare with
        precision = np.linalg.inv(matrix)
        assert got == pytest.approx(-precision[0, 1] / math.sqrt(precision[0, 0] * precision[1, 1]), abs=1e-8)
    # stratified: brute-force pair-weighted mean over strata
    num = den = 0.0
    for level in np.unique(z):
        rows = z == level
        m = int(rows.sum())
        if m < 2 or np.ptp(x[rows]) == 0 or np.ptp(y[rows]) == 0:
            continue
        num += _brute_tau_b(x[rows], y[rows]) * m * (m - 1) / 2
        den += m * (m - 1) / 2
    strat = P.stratified_kendall(x, y, P.strata_of(z))["kendall"]
    if den:
        assert strat == pytest.approx(num / den, abs=1e-10)
    else:
        assert np.isnan(strat)


def test_proxy_equal_to_params_has_no_size_blind_signal():
    rng = np.random.default_rng(1)
    z = rng.integers(0, 8, 3000).astype(float)
    y = z + rng.normal(size=z.size)
    # x = z with its ties broken at random: orders archs exactly as z does, and randomly within a size
    x = z + 1e-3 * rng.random(z.size)
    assert abs(P.partial_kendall(x, y, z)) < 0.03
    assert abs(P.stratified_kendall(x, y, P.strata_of(z))["kendall"]) < 0.05
    # x identical to z: formula 0/0 -> named error, or NaN on request; stratified undefined (all tied)
    with pytest.raises(P.PartialTauUndefined, match="tau_xz = 1"):
        P.partial_kendall(z, y, z)
    assert np.isnan(P.partial_kendall(z, y, z, undefined="nan"))
    assert np.isnan(P.partial_kendall(y, -z, z, undefined="nan"))  # tau_yz = -1 too
    assert np.isnan(P.stratified_kendall(z, y, P.strata_of(z))["kendall"])
    out = P.partial_kendall_ci(z, y, z, bootstrap=50)
    assert np.isnan(out["value"]) and out["undefined"] == 50


def test_monotone_transforms_leave_partial_and_stratified_unchanged():
    rng = np.random.default_rng(2)
    z = rng.integers(0, 5, 400).astype(float)
    x, y = z + rng.normal(size=400), z + rng.normal(size=400)
    base = P.partial_kendall(x, y, z)
    assert P.partial_kendall(np.exp(x), y ** 3, np.log1p(z)) == pytest.approx(base, abs=1e-12)
    assert P.partial_kendall(x, y, -z) == pytest.approx(base, abs=1e-12)  # orientation of z is irrelevant
    assert P.partial_kendall(-x, y, z) == pytest.approx(-base, abs=1e-12)
    s = P.stratified_kendall(x, y, P.strata_of(z))["kendall"]
    assert P.stratified_kendall(np.exp(x), 2 * y + 1, P.strata_of(z ** 2))["kendall"] == pytest.approx(s, abs=1e-12)


def test_bootstrap_ci_brackets_value_and_matches_scipy_on_original():
    rng = np.random.default_rng(3)
    z = rng.integers(0, 6, 300).astype(float)
    x = z + rng.normal(size=300)
    y = z + 0.5 * x + rng.normal(size=300)
    out = P.partial_kendall_ci(x, y, z, bootstrap=300, seed=4)
    taus = [scipy.stats.kendalltau(a, b).statistic for a, b in ((x, y), (x, z), (y, z))]
    assert out["value"] == pytest.approx(float(P.partial_from_taus(*taus)), abs=1e-12)
    assert out["lo"] < out["value"] < out["hi"] and out["undefined"] == 0 and out["n"] == 300
    assert P.partial_kendall_ci(x, y, z, bootstrap=300, seed=4) == out  # seeded
    strat = P.stratified_kendall_ci(x, y, P.strata_of(z), bootstrap=300, seed=4)
    assert strat["lo"] < strat["value"] < strat["hi"] and strat["strata_used"] == 6


def test_bootstrap_values_equal_explicit_resamples():
    rng = np.random.default_rng(5)
    z = rng.integers(0, 4, 60).astype(float)
    x, y = z + rng.normal(size=60), z + rng.normal(size=60)
    counts = P.bootstrap_counts(60, 5, seed=0)
    values = P.partial_kendall_resamples(x, y, z, counts)
    strat, _, _ = P.stratified_kendall_resamples(x, y, z, counts)
    for b in range(1, 6):
        idx = np.repeat(np.arange(60), counts[:, b])
        taus = [scipy.stats.kendalltau(a[idx], c[idx]).statistic for a, c in ((x, y), (x, z), (y, z))]
        assert values[b] == pytest.approx(float(P.partial_from_taus(*taus)), abs=1e-10)
        num = den = 0.0
        for level in np.unique(z):
            sel = idx[z[idx] == level]
            if sel.size >= 2:
                w = sel.size * (sel.size - 1) / 2
                num += scipy.stats.kendalltau(x[sel], y[sel]).statistic * w
                den += w
        assert strat[b] == pytest.approx(num / den, abs=1e-10)


def test_strata_of_binning_and_input_errors():
    z = np.array([0.5, 0.5, 0.7, 0.7000001, 1.2, 3.0])
    assert P.strata_of(z).tolist() == [0, 0, 1, 2, 3, 4]
    assert P.strata_of(z, decimals=3).tolist() == [0, 0, 1, 1, 2, 3]
    assert len(np.unique(P.strata_of(z, bins=2))) == 2
    with pytest.raises(ValueError, match="not both"):
        P.strata_of(z, decimals=1, bins=2)
    with pytest.raises(ValueError, match="non-finite values in x"):
        P.partial_kendall([1, np.inf, 3], [1, 2, 3], [1, 2, 2])
    with pytest.raises(ValueError, match="one value per architecture"):
        P.partial_kendall([1, 2, 3], [1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="undefined must be"):
        P.partial_kendall([1, 2, 3], [1, 2, 3], [1, 2, 2], undefined="zero")


def test_many_equals_one_at_a_time():
    rng = np.random.default_rng(6)
    z = rng.integers(0, 4, 80).astype(float)
    y = z + rng.normal(size=80)
    columns = {"a": z + rng.normal(size=80), "b": rng.normal(size=80)}
    counts = P.bootstrap_counts(80, 20, seed=1)
    many = P.partial_kendall_many(columns, y, z, counts)
    for name, x in columns.items():
        assert np.array_equal(many[name], P.partial_kendall_resamples(x, y, z, counts), equal_nan=True)
