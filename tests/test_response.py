"""Detector-response dating: ages from automatic catalogs that miss craters and add false ones.

The response (recall, false craters, diameter error) is checked against Monte Carlo: catalogs are
*simulated* from a known response -- true craters drawn from the production function, thinned by
the recall, their diameters scattered, false craters added -- and the corrected Poisson age must
recover the true age where the uncorrected one does not; fitting the simulated calibration data
must give back a response that predicts the same counts.
"""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pandas as pd
import pytest
from scipy.special import erfinv

from marscraters import chronology as chron
from marscraters.chronology import DetectorResponse, fit_response, model_age, sample_diameters
from marscraters.errors import ChronologyError, OutputExistsError

# a detector like the shipped one: ~90 % recall on sparse surfaces, fewer on crowded ones,
# ~60 false craters >= 1 km per 10^6 km², diameters 4 % too large with 8 % scatter on sparse
# surfaces, smaller and more scattered on crowded ones
_L = np.linspace(-0.2, 1.7, 9)
_G = np.linspace(0.0, 2.0, 5)


def _error_quantiles(L: float, g: float) -> tuple[float, ...]:
    """4 % too large on sparse surfaces, smaller on crowded ones and for 3-6 km craters; a skewed
    tail of gross underestimates (an inner ring picked instead of the rim)."""
    median = math.log10(1.04) - 0.05 * g - 0.06 * math.exp(-(((L - 0.6) / 0.15) ** 2))
    z = np.sqrt(2.0) * erfinv(2.0 * chron.DIAMETER_PROBS - 1.0)
    width = 0.035 + 0.04 * g
    return tuple(median + width * z + np.where(z < -1.0, 0.08 * (z + 1.0), 0.0))


TRUE = DetectorResponse(
    recall_nodes=(0.0, 0.5, 1.0, 2.0),
    recall_params=tuple((2.5 - 0.8 * g, 1.5 - 2.0 * g, 4.0 - 1.0 * g) for g in (0.0, 0.5, 1.0, 2.0)),
    false_coef=(-4.1, -0.8, 0.3),
    diameter_nodes=(tuple(_L), tuple(_G)),
    diameter_quantiles=tuple(tuple(_error_quantiles(L, g) for g in _G) for L in _L),
    d_range=(1.0, 40.0), n1_range=(1e-4, 1e-2), name="simulated",
)


def simulate(response: DetectorResponse, age: float, area: float, rng: np.random.Generator, d_range=(1.0, 64.0)) -> pd.DataFrame:
    """One surface seen by ``response``: truths with ``matched`` flags and detections."""
    n1 = float(chron.n1_from_age(age))
    truth = sample_diameters(age, area, (0.5 * d_range[0], d_range[1]), rng=rng)
    found = rng.random(truth.size) < response.recall(truth, n1)
    det_true = response.sample_diameters(truth[found], n1, rng)
    # false craters: a Poisson process in log10 D with density 10^(a0 + a1 L + a2 g)
    L = np.linspace(math.log10(d_range[0]), math.log10(d_range[1]), 2001)
    dens = response.false_density(10**L, n1)
    cdf = np.r_[0.0, np.cumsum(0.5 * (dens[1:] + dens[:-1]) * np.diff(L))]
    n_false = rng.poisson(area * cdf[-1])
    det_false = 10 ** np.interp(rng.random(n_false) * cdf[-1], cdf, L)
    rows = [
        pd.DataFrame({"kind": "truth", "diameter_km": truth, "matched": found, "truth_diameter_km": np.nan}),
        pd.DataFrame({"kind": "detection", "diameter_km": det_true, "matched": True, "truth_diameter_km": truth[found]}),
        pd.DataFrame({"kind": "detection", "diameter_km": det_false, "matched": False, "truth_diameter_km": np.nan}),
    ]
    out = pd.concat(rows, ignore_index=True)
    out["age_ga"], out["tile"], out["area_km2"] = age, 0, area
    return out


def test_expected_counts_match_a_monte_carlo_of_the_same_detector():
    rng = np.random.default_rng(1)
    for age, area in ((0.5, 4e6), (3.6, 3e5)):
        n1 = float(chron.n1_from_age(age))
        real, false = TRUE.expected((1.6, 16.0), n1, area)
        sims = [simulate(TRUE, age, area, rng) for _ in range(30)]
        det = [s[(s.kind == "detection") & (s.diameter_km >= 1.6) & (s.diameter_km < 16)] for s in sims]
        mean_real = np.mean([d.matched.sum() for d in det])
        mean_false = np.mean([(~d.matched).sum() for d in det])
        # 30 draws: the mean is within ~3 standard errors of the expectation
        assert abs(mean_real - real[0]) < 3 * math.sqrt(real[0] / 30) + 1
        assert abs(mean_false - false[0]) < 3 * math.sqrt(false[0] / 30) + 1


@pytest.mark.parametrize("age,area", [(0.5, 6e6), (1.0, 3e6), (3.0, 8e5), (3.7, 2.5e5)])
def test_the_response_dates_simulated_detections_where_a_complete_count_misses(age, area):
    rng = np.random.default_rng(int(age * 10))
    corrected, plain = [], []
    for _ in range(6):
        s = simulate(TRUE, age, area, rng)
        det = s.loc[s.kind == "detection", "diameter_km"].to_numpy()
        corrected.append(model_age(det, area_km2=area, diameter_range=(1.6, 16.0), response=TRUE))
        plain.append(model_age(det, area_km2=area, diameter_range=(1.6, 16.0)))
    err = np.array([c.age / age - 1 for c in corrected])
    # each draw has ~5 % Poisson scatter (40 draws per age: mean errors -2 % .. +1 % when this
    # was written); the mean of 6 draws is unbiased within 5 %, and no draw is off by 20 %
    assert abs(err.mean()) < 0.05 and np.abs(err).max() < 0.2, err
    assert all(c.response == "simulated" and c.expected_false > 0 for c in corrected)
    if age == 0.5:  # the false craters make the uncorrected count read too old
        plain_err = np.array([p.age / age - 1 for p in plain])
        assert plain_err.mean() > 0.2 and abs(plain_err.mean()) > 3 * abs(err.mean())


def test_a_perfect_detector_gives_the_plain_poisson_age():
    perfect = DetectorResponse(recall_nodes=(0.0,), recall_params=((40.0, 40.0, 0.0),), false_coef=(-30.0, 0.0, 0.0), diameter_nodes=((0.0,), (0.0,)),
                               diameter_quantiles=(((0.0,) * 16,),), d_range=(0.5, 100.0), n1_range=(1e-4, 1e-2), name="perfect")
    d = sample_diameters(3.2, 5e5, (1.0, 32.0), rng=3)
    a = model_age(d, area_km2=5e5, diameter_range=(1.0, 16.0), response=perfect)
    b = model_age(d, area_km2=5e5, diameter_range=(1.0, 16.0))
    assert a.age == pytest.approx(b.age, rel=2e-3)
    assert a.lower == pytest.approx(b.lower, rel=5e-3) and a.upper == pytest.approx(b.upper, rel=5e-3)


def test_fit_response_recovers_the_detector_from_calibration_surfaces():
    rng = np.random.default_rng(5)
    ages = (0.3, 1.5, 2.5, 3.4, 3.8)
    areas = (6e6, 1.5e6, 8e5, 4e5, 1.5e5)
    data = pd.concat([simulate(TRUE, a, A, rng).assign(tile=i) for i, (a, A) in enumerate(zip(ages, areas))], ignore_index=True)
    fitted = fit_response(data, name="refit", d_min=1.0)
    for n1 in (1e-4, 3e-3):
        # tolerances ~2.5 standard errors of a median of the pairs near each point (few at 10 km)
        for d, tol in ((1.5, 0.015), (2.5, 0.02), (10.0, 0.045)):
            (b0, s0), (b1, s1) = (r.diameter_error(d, n1) for r in (TRUE, fitted))
            assert b1 == pytest.approx(b0, abs=tol) and s1 == pytest.approx(s0, abs=tol)
        # the skewed tail too (the lowest quantile, 3 %), where pairs are plentiful
        q0, q1 = (r.diameter_quantile(1.5, n1)[0] for r in (TRUE, fitted))
        assert q1 == pytest.approx(q0, abs=0.03)
    for age in (0.5, 1.0, 3.0, 3.7):  # ages it was not fitted on
        n1 = float(chron.n1_from_age(age))
        for rng_km in ((1.0, 2.0), (1.6, 16.0), (4.0, 16.0)):
            r0, f0 = TRUE.expected(rng_km, n1, 1e6)
            r1, f1 = fitted.expected(rng_km, n1, 1e6)
            # what dating uses is the total; the false part alone is measured from ~1,000 craters,
            # per diameter bin and calibration surface (shrunk towards a log-linear law), so it
            # carries the noise of the smallest surface's bins (150,000 km² at 3.8 Ga)
            assert r1[0] + f1[0] == pytest.approx(r0[0] + f0[0], rel=0.08)
            assert f1[0] == pytest.approx(f0[0], rel=0.45)
    # the measured false-crater table: one row per calibration surface, finite, and its
    # in-sample false counts close to those observed (which a log-linear law alone need not be)
    edges, rows = fitted.false_table
    assert len(rows) == len(ages) and all(len(r) == len(edges) - 1 for r in rows)
    check = fitted.check(data)
    assert list(check.age_ga) == list(ages)
    assert np.allclose(check["expected"], check["detections"], rtol=0.15)
    assert np.allclose(check["expected false"], check["false"], rtol=0.3, atol=3)
    assert "refit" in str(fitted) and "recall" in str(fitted)


def test_save_load_round_trip_and_bad_files(tmp_path):
    path = TRUE.save(tmp_path / "r.json")
    assert DetectorResponse.load(path) == TRUE
    with pytest.raises(OutputExistsError):
        TRUE.save(path)
    TRUE.save(path, overwrite=True)
    assert chron.load_response(str(path)) == TRUE
    with pytest.raises(ChronologyError, match="calibrate one"):
        DetectorResponse.load(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ChronologyError, match="not a valid detector response"):
        DetectorResponse.load(tmp_path / "bad.json")
    d = json.loads(path.read_text())
    d["marscraters_response"] = 99
    (tmp_path / "new.json").write_text(json.dumps(d))
    with pytest.raises(ChronologyError, match="newer marscraters"):
        DetectorResponse.load(tmp_path / "new.json")
    d["marscraters_response"] = 1
    d["recall_params"][1][1] = float("nan")
    (tmp_path / "nan.json").write_text(json.dumps(d))
    with pytest.raises(ChronologyError, match="refit"):
        DetectorResponse.load(tmp_path / "nan.json")
    d["recall_params"][1][1] = 0.0
    d["diameter_quantiles"] = d["diameter_quantiles"][:-1]  # a table that does not match its nodes
    (tmp_path / "nan.json").write_text(json.dumps(d))
    with pytest.raises(ChronologyError, match="refit"):
        DetectorResponse.load(tmp_path / "nan.json")


def test_model_age_refuses_what_a_response_cannot_correct():
    d = sample_diameters(1.0, 2e6, (1.0, 16.0), rng=2)
    with pytest.raises(ChronologyError, match="method='poisson'"):
        model_age(d, area_km2=2e6, diameter_range=(1.6, 16.0), method="cumulative", response=TRUE)
    with pytest.raises(ChronologyError, match="calibrated from 1 km"):
        model_age(d, area_km2=2e6, diameter_range=(0.7, 16.0), response=TRUE)
    with pytest.raises(ChronologyError, match="DetectorResponse"):
        model_age(d, area_km2=2e6, diameter_range=(1.6, 16.0), response=3)
    with pytest.raises(ChronologyError, match="two ages"):
        fit_response(simulate(TRUE, 1.0, 1e6, np.random.default_rng(0)))
    with pytest.raises(ChronologyError, match="lacks columns"):
        fit_response(pd.DataFrame({"diameter_km": [1.0]}))


def test_the_shipped_response_loads_and_describes_the_shipped_model():
    from marscraters.detect import model_info
    from marscraters.model import default_weights_path

    if not default_weights_path().with_suffix(".response.json").exists():
        pytest.skip("no shipped response next to the shipped weights")
    r = chron.load_response("shipped")
    assert r.name == model_info()["name"]
    assert r.d_range[0] >= 1.0 and r.n1_range[0] < r.n1_range[1]
    n1 = float(chron.n1_from_age(1.0))
    assert 0.3 < float(r.recall(4.0, n1)) <= 1.0


def test_cli_age_dates_through_a_response_file(tmp_path, capsys):
    import argparse

    from marscraters.catalog import make_catalog, write_craterstats

    s = simulate(TRUE, 0.6, 5e6, np.random.default_rng(9))
    det = s.loc[s.kind == "detection", "diameter_km"].to_numpy()
    diam = tmp_path / "count.diam"
    write_craterstats(make_catalog(lat=np.zeros(det.size), lon=np.zeros(det.size), diameter_km=det), diam, area_km2=5e6)
    resp = TRUE.save(tmp_path / "detector.response.json")
    parser = argparse.ArgumentParser(prog="marscraters")
    chron.add_age_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["age", str(diam), "--range", "1.6", "16", "--no-snap", "--response", str(resp)])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    expected = model_age(det, area_km2=5e6, diameter_range=(1.6, 16.0), snap=False, response=TRUE)
    assert expected.age_text() in text and "detector response of simulated" in text
    args = parser.parse_args(["age", str(diam), "--range", "1.6", "16", "--response", str(tmp_path / "none.json")])
    with pytest.raises(ChronologyError, match="no detector response"):
        args.func(args)


def test_snapping_never_widens_a_range_below_the_calibrated_diameters():
    d = sample_diameters(1.0, 4e6, (1.0, 20.0), rng=4)
    r = model_age(d, area_km2=4e6, diameter_range=(1.6, 16.0), response=dataclasses.replace(TRUE, d_range=(1.6, 40.0)))
    assert r.diameter_range[0] == pytest.approx(1.6)  # plain snapping would give 1.5 (a pseudo-log boundary)
    assert model_age(d, area_km2=4e6, diameter_range=(1.6, 16.0)).diameter_range[0] < 1.6


def test_response_guards_the_system_and_scalar_sampling():
    d = sample_diameters(1.0, 2e6, (1.0, 16.0), rng=2)
    with pytest.raises(ChronologyError, match="system='neukum-ivanov'"):
        model_age(d, area_km2=2e6, diameter_range=(1.6, 16.0), system="ivanov", response=TRUE)
    # one true diameter, many surfaces (or the reverse) broadcast
    assert TRUE.sample_diameters(2.0, np.array([1e-4, 1e-3, 1e-2]), rng=1).shape == (3,)
    assert TRUE.sample_diameters(np.array([2.0, 3.0]), 1e-3, rng=1).shape == (2,)


def test_an_age_beyond_the_calibrated_crowdings_warns():
    narrow = dataclasses.replace(TRUE, n1_range=(1e-4, 2e-4))
    d = sample_diameters(3.8, 2e5, (1.0, 16.0), rng=6)
    with pytest.warns(UserWarning, match="extrapolation"):
        model_age(d, area_km2=2e5, diameter_range=(1.6, 16.0), response=narrow)


def test_false_crater_table_round_trip_and_validation(tmp_path):
    import dataclasses

    table = ((0.0, 0.2, 0.4), tuple((-5.0 + 0.1 * j, -5.2 + 0.1 * j) for j in range(len(TRUE.recall_nodes))))
    r = dataclasses.replace(TRUE, false_table=table)
    assert DetectorResponse.load(r.save(tmp_path / "t.json")) == r
    # the table, not the law: the bin's density, interpolated in crowding between nodes
    assert float(r.false_density(1.2, 1e-9)) == pytest.approx(10**-5.0, rel=1e-3)
    assert float(r.false_density(2.0, 1e-9)) == pytest.approx(10**-5.2, rel=1e-3)
    with pytest.raises(ChronologyError, match="false-crater table"):
        dataclasses.replace(TRUE, false_table=(table[0], table[1][:-1]))
    with pytest.raises(ChronologyError, match="false-crater table"):
        dataclasses.replace(TRUE, false_table=((0.0, 0.2, 0.1), table[1]))
