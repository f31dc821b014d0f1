"""The error bars of r(z), of the PR curve and of its AUPR keep their 95% promise with few
annotators, pooled over simulated annotation campaigns (the fast form of
`python -m benchmarks.pr_band_coverage`), also in edge bins where r is near 0 or 1, and annotators
who agree exactly do not widen them."""

import numpy as np

from omnijax import evaluation as ev

EDGES = np.linspace(0, 1, 5)
LOG_RHO = np.log(np.array([4.0, 3.0, 2.0, 1.0]) / 10)
P = np.linspace(0.7, 0.3, 4)


def population_mean(p: np.ndarray, sd: float) -> np.ndarray:
    """E over the annotators' leniency s ~ N(0, sd) of clip(p + s, 0, 1) (Gauss-Hermite)."""
    nodes, weights = np.polynomial.hermite_e.hermegauss(60)
    return np.clip(p[:, None] + sd * nodes[None, :], 0, 1) @ (weights / weights.sum())


def campaigns(annotators: int, sd: float, num: int, samples: int = 30, bootstrap: int = 400):
    """Coverage over `num` campaigns: each draws `annotators` leniencies N(0, sd) shared by the 4
    bins, and every annotator scores every sample Bernoulli(clip(p + s)). Returns the fractions of
    campaigns whose 95% interval covers the truth: r of bin 0, the PR band at the loosest threshold
    (all bins: where a leniency shared across bins adds up) and the AUPR interval."""
    truth = population_mean(P, sd)
    pr_true = ev.precision_recall(EDGES, LOG_RHO, truth, "low")
    aupr_true = ev.aupr(pr_true)
    rng = np.random.default_rng(12345)
    r0, loosest, area = [], [], []
    for sim in range(num):
        shifts = rng.normal(0, sd, annotators)
        scores = [(rng.random((samples, annotators)) < np.clip(p + shifts, 0, 1)).astype(float) for p in P]
        bp = ev.bin_precision(scores, num_bootstrap=bootstrap, seed=sim)
        band = ev.precision_recall_band(EDGES, LOG_RHO, bp.r, bp.replicates, "low")
        r0.append(bp.ci_low[0] <= truth[0] <= bp.ci_high[0])
        loosest.append(band.precision_low[-1] <= pr_true.precision[-1] <= band.precision_high[-1])
        area.append(band.aupr_low <= aupr_true <= band.aupr_high)
    return np.mean(r0), np.mean(loosest), np.mean(area)


def test_three_annotators_intervals_cover_95_percent():
    """3 annotators whose leniency (sd 0.15) outweighs the noise of 30 samples per bin: the former
    two-way bootstrap (annotators resampled like samples) covered 91% (r), 83% (loosest threshold)
    and 89% (AUPR) here; now 97%, 96% and 96%. Each coverage must reach 0.95 - 3 binomial standard
    errors of 300 campaigns (0.912)."""
    num = 300
    bound = 0.95 - 3 * np.sqrt(0.95 * 0.05 / num)
    r0, loosest, area = campaigns(3, 0.15, num)
    assert r0 >= bound and loosest >= bound and area >= bound, (r0, loosest, area, bound)


def test_annotators_who_agree_exactly_leave_the_band_unchanged():
    """Three annotators who give every sample the same score are one annotator three times: no
    spread between them, so r's interval, the band and the AUPR interval are those of one."""
    rng = np.random.default_rng(3)
    one = [(rng.random((20, 1)) < p).astype(float) for p in P]
    three = [np.repeat(s, 3, axis=1) for s in one]
    alone, agreed = (ev.bin_precision(s, num_bootstrap=500, seed=7) for s in (one, three))
    np.testing.assert_allclose(agreed.replicates, alone.replicates, rtol=0, atol=1e-9)
    np.testing.assert_allclose(agreed.ci_high - agreed.ci_low, alone.ci_high - alone.ci_low, rtol=1e-6, atol=1e-9)
    bands = [ev.precision_recall_band(EDGES, LOG_RHO, b.r, b.replicates, "low") for b in (alone, agreed)]
    np.testing.assert_allclose(bands[1].precision_high - bands[1].precision_low,
                               bands[0].precision_high - bands[0].precision_low, rtol=1e-6, atol=1e-9)
    assert abs((bands[1].aupr_high - bands[1].aupr_low) / (bands[0].aupr_high - bands[0].aupr_low) - 1) < 1e-6


def test_edge_bins_intervals_cover_95_percent():
    """Edge bins, true r = 0.9 and 0.1, of 15 samples each, scored by 3 annotators who agree exactly
    (one 0/1 score per sample): 21% of such bins score all ones (or all zeros), where a plain
    bootstrap over the samples gave the zero-width [1, 1] (it covered 80% in both edge bins here,
    the band at the strictest threshold 80%); with the samples part's pseudo-sample (mid-p for 0/1
    scores) 98%, 98% and 98%. r's interval in both edge bins and the band at the strictest threshold (bin 0 alone) must
    reach 0.95 - 3 binomial standard errors of 300 campaigns (0.912)."""
    num, samples = 300, 15
    p = np.array([0.9, 0.7, 0.3, 0.1])
    pr_true = ev.precision_recall(EDGES, LOG_RHO, p, "low")
    rng = np.random.default_rng(2024)
    first, last, strictest = [], [], []
    for sim in range(num):
        scores = [np.repeat((rng.random((samples, 1)) < q).astype(float), 3, axis=1) for q in p]
        bp = ev.bin_precision(scores, num_bootstrap=400, seed=sim)
        band = ev.precision_recall_band(EDGES, LOG_RHO, bp.r, bp.replicates, "low")
        first.append(bp.ci_low[0] <= p[0] <= bp.ci_high[0])
        last.append(bp.ci_low[-1] <= p[-1] <= bp.ci_high[-1])
        strictest.append(band.precision_low[0] <= pr_true.precision[0] <= band.precision_high[0])
    bound = 0.95 - 3 * np.sqrt(0.95 * 0.05 / num)
    covered = np.mean(first), np.mean(last), np.mean(strictest)
    assert min(covered) >= bound, (covered, bound)
