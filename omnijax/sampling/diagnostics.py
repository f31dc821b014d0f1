"""Convergence diagnostics and the verdict every estimate carries (pure numpy).

Replica exchange (method="pt"): the kept records (records, G groups, W walkers) with their
full-run MBAR weights ln w_n are cut, per group, into `num_batches` consecutive batches of
records. Holding the full run's free energies fixed (no new solve), group g's batch k
estimates the bin fraction p_gk(b) = sum_{n in g,k, bin b} w_n / sum_{n in g,k} w_n. From these:

* group agreement, per bin: F_b = (between-group variance of the groups' own estimates) /
  (that variance as predicted by the spread of each group's batches). Independent groups that
  sample the same distribution give F ~ F(G-1, G(K-1)) (mean 1); groups that each see a
  different part of the space (stuck walkers, too short a run) give F >> 1.
* drift, per bin: the first half of the kept records against the second, paired within each
  group, in units of its standard error (a Student t with G-1 degrees of freedom). A drift
  beyond the limit in any bin distrusts every bin (`bin_verdict`): the run is out of
  equilibrium, and its neighbouring bins drift too, below the limit.
* effective samples, per bin: n_b / tau_b, where tau_b = (variance over the groups of each
  group's count of records in the bin) / (that variance for independent records); tau_b >= 1.

Round trips: the run is not converged when no walker made one, when some independent group
made none (that group never linked the ends of its ladder, so it is no replicate of an
equilibrium run for the group bootstrap), or when more walkers made none than the others' rate
leaves to chance. (An earlier rule asked the median walker for a trip; on the deceptive trap
spaces of `benchmarks.accuracy_spaces` both rules reject every run with a bin beyond 3 standard
errors, and the per-group one accepts the accurate default runs on bits64 and potts40: see
BUILD_NOTES.md, "The round-trip rule, calibrated on runs that miss".)

Significance thresholds are Bonferroni-corrected over the bins tested (family-wise 1%), and
the drift threshold is never below 3 standard errors. Agreement and drift are tested only in
bins with >= `MIN_EFFECTIVE` effective samples (bins below get their own warning).
"""

from __future__ import annotations

import math

import numpy as np

MIN_SWAP_ACCEPTANCE = 0.1
MIN_EFFECTIVE = 10.0
FAMILY_ALPHA = 0.01
MIN_DRIFT_SIGMA = 3.0
MIN_REPRESENTATIVES_CHECKED = 8  # a bin holding this many representatives, all from one walker, is flagged


def _quantile_from_density(log_density, mass_below: float) -> float:
    """x >= 0 where the integral of exp(log_density) from 0 reaches `mass_below` (log grid)."""
    u = np.linspace(-14.0, 9.0, 200_001)
    x = np.exp(u)
    integrand = np.exp(log_density(x)) * x
    mass = np.concatenate([[0.0], np.cumsum((integrand[1:] + integrand[:-1]) / 2) * (u[1] - u[0])])
    return float(np.interp(mass_below, mass, x))


def t_two_sided(dof: int, p: float) -> float:
    """|t| exceeded with probability p by Student's t with `dof` degrees of freedom."""
    n = float(dof)
    const = math.lgamma((n + 1) / 2) - math.lgamma(n / 2) - 0.5 * math.log(n * math.pi)
    return _quantile_from_density(lambda t: const - (n + 1) / 2 * np.log1p(t**2 / n), 0.5 - p / 2)


def f_upper(d1: int, d2: int, p: float) -> float:
    """The value exceeded with probability p by an F(d1, d2) variable."""
    a, b = d1 / 2.0, d2 / 2.0
    const = math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b) + a * math.log(d1 / d2)
    return _quantile_from_density(
        lambda x: const + (a - 1) * np.log(x) - (a + b) * np.log1p(d1 * x / d2), 1.0 - p)


def describe_bins(bins, edges, limit: int = 8) -> str:
    """'bin 3 [0.1, 0.2)' or 'bins 3 [..), 5 [..) and 4 more'."""
    bins = [int(b) for b in bins]
    parts = [f"{b} [{edges[b]:.4g}, {edges[b + 1]:.4g})" for b in bins[:limit]]
    more = f" and {len(bins) - limit} more" if len(bins) > limit else ""
    return ("bin " if len(bins) == 1 else "bins ") + ", ".join(parts) + more


def round_trip_report(round_trips) -> dict:
    """round_trips (G, W) per walker -> per walker and per group, total, median, and the walkers
    and groups with none."""
    trips = np.asarray(round_trips)
    per_group = trips.reshape(len(trips), -1).sum(axis=1)
    return {"round_trips_per_walker": trips, "round_trips_total": int(trips.sum()),
            "round_trips_median": float(np.median(trips)),
            "walkers_without_round_trip": int((trips == 0).sum()), "num_walkers": int(trips.size),
            "round_trips_per_group": per_group.astype(np.int64),
            "groups_without_round_trip": [int(g) for g in np.flatnonzero(per_group == 0)]}


def swap_report(swap_accepts, swap_attempts, betas) -> dict:
    """Per neighbouring pair (summed over groups) acceptance, and the weakest pair."""
    accepts = np.asarray(swap_accepts).reshape(-1, len(betas) - 1).sum(axis=0)
    attempts = np.asarray(swap_attempts).reshape(-1, len(betas) - 1).sum(axis=0)
    rate = accepts / np.maximum(attempts, 1)
    weakest = int(np.argmin(rate))
    groups = np.asarray(swap_attempts).reshape(-1, len(betas) - 1).shape[0]
    # Pairs 0 and 1 are active in alternate rounds; with one pair it is active every other round.
    rounds = int(attempts[:2].sum()) // groups if len(rate) > 1 else 2 * int(attempts[0]) // groups
    return {"swap_acceptance": rate, "swap_rounds": rounds, "round_trip_rounds_ideal": ideal_round_trip_rounds(rate),
            "weakest_pair": (weakest, weakest + 1),
            "weakest_pair_betas": (float(betas[weakest]), float(betas[weakest + 1])),
            "weakest_swap_acceptance": float(rate[weakest])}


def ideal_round_trip_rounds(swap_acceptance) -> float:
    """Expected swap rounds per round trip (bottom -> top -> bottom) of one walker on a ladder
    whose neighbouring pairs accept with these probabilities, if every swap saw outputs drawn
    afresh from each rung's distribution (the best any local sampler can do).

    With the alternating even/odd swaps of the kernel, a walker keeps its direction while its
    swaps are accepted and turns round at a rejection: a Markov chain on (rung, direction). Its
    mean first-passage times from the bottom to the top and back are solved exactly. The time
    grows like the square of the number of rungs at fixed acceptance, and at the best spacing
    like the square of the ladder's communication barrier sum(1 - acceptance) (Syed, Bouchard-
    Cote, Deligiannidis & Doucet 2022, JRSS B 84:321): a range whose ladder needs many rungs
    cannot be crossed in a short run by any ladder."""
    a = np.clip(np.asarray(swap_acceptance, np.float64).reshape(-1), 0.0, 1.0)
    rungs = a.size + 1
    if rungs < 2:
        raise ValueError(f"swap_acceptance must hold one rate per neighbouring pair (>= 1), got {a.size}")
    if not np.all(a > 0):
        return math.inf

    def passage(start_slot, direction, goal_slot):
        # States (slot, d) for d in (-1, +1), slot != goal; t = 1 + sum_next P t.
        index = {}
        for slot in range(rungs):
            if slot != goal_slot:
                for d in (-1, 1):
                    index[(slot, d)] = len(index)
        m = np.eye(len(index))
        for (slot, d), i in index.items():
            target = slot + d
            if 0 <= target < rungs:
                accept = a[min(slot, target)]
                if target != goal_slot:
                    m[i, index[(target, d)]] -= accept
                m[i, index[(slot, -d)]] -= 1.0 - accept
            else:
                m[i, index[(slot, -d)]] -= 1.0   # at an end with nowhere to go: turn round
        times = np.linalg.solve(m, np.ones(len(index)))
        return float(times[index[(start_slot, direction)]])

    # A walker arrives at an end moving outwards; its next round has no pair there, so it turns.
    return passage(0, -1, rungs - 1) + passage(rungs - 1, 1, 0)


def group_statistics(log_w, bins, num_bins: int, num_batches: int = 4) -> dict:
    """Per-bin agreement, drift and effective samples from records (T, G, W).

    log_w: full-run MBAR ln weight of each record; bins: its bin (outside: <0 or >= num_bins).
    Returns arrays of shape (num_bins,) (NaN where not computable) and the groups' own
    ln rho (G, num_bins), all with the full run's free energies held fixed.
    """
    log_w = np.asarray(log_w, np.float64)
    bins = np.asarray(bins)
    records, groups, _ = log_w.shape
    k = max(1, min(num_batches, records))
    k -= (k % 2) if k > 1 else 0
    batch = (np.arange(records) * k // records)[:, None, None]
    cell = np.broadcast_to(batch * groups + np.arange(groups)[None, :, None], log_w.shape)
    inside = (bins >= 0) & (bins < num_bins)
    b = np.where(inside, bins, num_bins)
    # ln of summed weight per (batch, group, bin), shifted per bin so the tails keep precision.
    top = np.full(num_bins + 1, -np.inf)
    np.maximum.at(top, b.ravel(), log_w.ravel())
    top = np.where(np.isfinite(top), top, 0.0)
    sums = np.zeros((k * groups, num_bins + 1))
    np.add.at(sums, (cell.ravel(), b.ravel()), np.exp(log_w - top[b]).ravel())
    # totals per (batch, group) over all records, in units of exp(top_total)
    top_total = float(log_w.max())
    totals = np.zeros(k * groups)
    np.add.at(totals, cell.ravel(), np.exp(log_w - top_total).ravel())
    sums, totals = sums.reshape(k, groups, -1)[..., :num_bins], totals.reshape(k, groups)
    scale = np.exp(top[:num_bins] - top_total)  # weight units of bin b relative to the totals
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        # relative fractions r = p_(part) / p_(full run), which need no absolute scale
        full = sums.sum(axis=(0, 1)) / totals.sum()
        rel = lambda s, t: (s / t[..., None]) / full
        group_rel = rel(sums.sum(axis=0), totals.sum(axis=0))          # (G, B)
        batch_rel = rel(sums, totals)                                  # (K, G, B)
        half = k // 2
        first = rel(sums[:half].sum(axis=0), totals[:half].sum(axis=0)) if k > 1 else np.nan * group_rel
        second = rel(sums[half:].sum(axis=0), totals[half:].sum(axis=0)) if k > 1 else np.nan * group_rel
        between = group_rel.var(axis=0, ddof=1) if groups > 1 else np.full(num_bins, np.nan)
        within = batch_rel.var(axis=0, ddof=1).mean(axis=0) if k > 1 else np.full(num_bins, np.nan)
        agreement = between / (within / k)
        diff = first - second
        drift = diff.mean(axis=0) / (diff.std(axis=0, ddof=1) / math.sqrt(groups)) if groups > 1 \
            else np.full(num_bins, np.nan)
        log_rho_groups = np.log(sums.sum(axis=0) / totals.sum(axis=0)[:, None] * scale)
        log_rho_halves = np.log(np.stack([sums[:half].sum(axis=(0, 1)) / totals[:half].sum(),
                                          sums[half:].sum(axis=(0, 1)) / totals[half:].sum()]) * scale)
    # effective samples from the spread of the groups' raw counts
    counts = np.zeros((groups, num_bins + 1))
    np.add.at(counts, (np.broadcast_to(np.arange(groups)[None, :, None], b.shape).ravel(), b.ravel()), 1.0)
    counts = counts[:, :num_bins]
    per_group = log_w.shape[0] * log_w.shape[2]
    q = counts.sum(axis=0) / (per_group * groups)
    with np.errstate(divide="ignore", invalid="ignore"):
        tau = counts.var(axis=0, ddof=1) / (per_group * q * (1 - q)) if groups > 1 else np.full(num_bins, np.nan)
    tau = np.where(np.isfinite(tau), np.maximum(tau, 1.0), np.nan)
    n_eff = np.where(counts.sum(axis=0) > 0, counts.sum(axis=0) / tau, 0.0)
    return {"group_agreement": agreement, "drift_sigma": drift, "n_effective": n_eff,
            "log_rho_per_group": log_rho_groups, "log_rho_first_half": log_rho_halves[0],
            "log_rho_second_half": log_rho_halves[1], "num_batches": k, "num_groups": groups}


def empty_interior_bins(n_samples) -> np.ndarray:
    """Empty bins that lie between the first and the last filled bin."""
    filled = np.flatnonzero(np.asarray(n_samples) > 0)
    if not filled.size:
        return filled
    inner = np.arange(filled[0], filled[-1] + 1)
    return inner[np.asarray(n_samples)[inner] == 0]


def ladder_end_report(z, slot, num_rungs: int) -> dict:
    """The highest output the walkers at the top rung held and the lowest the walkers at the
    bottom rung held, over the records z, slot (any shape alike; NaN where a rung holds none):
    how far each end of the ladder got, for the sentence on an empty end bin."""
    z, slot = np.asarray(z), np.asarray(slot)
    top, bottom = z[slot == num_rungs - 1], z[slot == 0]
    return {"top_rung_highest_output": float(top.max()) if top.size else math.nan,
            "bottom_rung_lowest_output": float(bottom.min()) if bottom.size else math.nan}


def empty_end_warning(end: str, betas, edges, ends: dict | None, stopped_pushing: bool) -> str:
    """The verdict's sentence for an empty end bin ("top"/"bottom"): how far the walkers at that
    end of the ladder got (`ends`, `ladder_end_report`), and whether the burn-in stopped pushing
    that end because the end rung's output no longer moved."""
    top = end == "top"
    beta = betas[-1] if top else betas[0]
    edge = edges[-2] if top else edges[1]
    held = (ends or {}).get("top_rung_highest_output" if top else "bottom_rung_lowest_output", math.nan)
    got = "" if not math.isfinite(held) else (f", reached at most {held:.4g}" if top else f", reached at least {held:.4g}")
    tried = (f", and pushing the {end} end further during the burn-in did not move it closer"
             if stopped_pushing else "")
    return (f"No sample fell in the {end} bin: the walkers at the {end} of the ladder (beta = {beta:.4g})"
            f"{got} (the {end} bin {'starts' if top else 'ends'} at {edge:.4g}){tried}. The {end} bins may hold "
            f"no input at all, or be out of this sampler's reach (lower their edges or sample longer).")


def bin_verdict(num_bins: int, named_bins, run_wide: bool) -> np.ndarray:
    """Per bin True unless the bin is named in a warning; all False after a run-wide warning
    (no round trips, a ladder gap, groups stuck, drift): then no bin's normalisation is trustworthy."""
    ok = np.full(num_bins, not run_wide)
    ok[list(named_bins)] = False
    return ok


def representative_report(tags, priority) -> dict:
    """Per bin: representatives held, distinct walkers and distinct (walker, round trips) pairs
    they come from (tags (B, capacity, 2) and priority (B, capacity) of the reservoir)."""
    tags, priority = np.asarray(tags), np.asarray(priority)
    held = np.isfinite(priority)
    walkers = np.array([len(np.unique(t[h, 0])) for t, h in zip(tags, held)], np.int64)
    trips = np.array([len(np.unique(t[h], axis=0)) for t, h in zip(tags, held)], np.int64)
    return {"representative_count": held.sum(axis=1).astype(np.int64), "representative_walkers": walkers,
            "representative_round_trips": trips}


def stuck_walkers_p_value(trips: dict) -> float:
    """P(at least this many walkers without a round trip | every walker makes trips at the same
    Poisson rate, the mean over walkers): a small value means some walkers are stuck rather than
    unlucky. (With a mean of 3 trips, ~5% of well-mixed walkers still make none.)"""
    n, zero = trips["num_walkers"], trips["walkers_without_round_trip"]
    if zero == 0:
        return 1.0
    p = math.exp(-trips["round_trips_total"] / n)
    terms = [math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
             + k * math.log(p) + (n - k) * math.log1p(-p) for k in range(zero, n + 1)] if p < 1 else [0.0]
    top = max(terms)
    return float(min(1.0, math.exp(top) * sum(math.exp(t - top) for t in terms)))


def _list(items, limit: int = 8) -> str:
    """'1, 4, 7' or '1, 4, 7, ... (12 in all)'."""
    items = [str(i) for i in items]
    return ", ".join(items) if len(items) <= limit else ", ".join(items[:limit]) + f", ... ({len(items)} in all)"


def _trip_bound_note(trips: dict, swaps: dict) -> str:
    """What the ladder's own acceptances allow (`ideal_round_trip_rounds`) against the run's rounds."""
    bound, rounds = swaps.get("round_trip_rounds_ideal"), swaps.get("swap_rounds")
    if bound is None or not rounds or not math.isfinite(bound):
        return ""
    return (f" Even with outputs drawn afresh at every swap, this ladder's acceptances allow one round trip "
            f"per {bound:.3g} swap rounds, and the run made {rounds}: a median of 3 trips needs about "
            f"{3 * bound / rounds:.2g}x as many sweeps (more still with correlated local moves), or a "
            f"narrower output range.")


def verdict_limits(num_tested: int, num_groups: int, num_batches: int) -> tuple[float, float]:
    """(F limit of the group agreement, |t| limit of the drift) at family-wise FAMILY_ALPHA over
    `num_tested` bins (Bonferroni), the drift limit never below MIN_DRIFT_SIGMA."""
    p = FAMILY_ALPHA / num_tested
    return (f_upper(num_groups - 1, num_groups * (num_batches - 1), p),
            max(MIN_DRIFT_SIGMA, t_two_sided(num_groups - 1, p)))


def pt_verdict(trips: dict, swaps: dict, stats: dict, betas, edges, n_samples,
               reps: dict | None = None, *, ends: dict | None = None,
               stopped_pushing=()) -> tuple[bool, list[str], list, bool]:
    """(converged, warnings, bins named, any run-wide warning) for a replica-exchange run; see the module docstring.
    Warnings that name no bin (round trips, swap pairs) come first. `reps` (`representative_report`)
    adds a warning for a bin whose >= MIN_REPRESENTATIVES_CHECKED representatives all come from one walker.
    An end bin with no sample is named, with how far that end of the ladder got (`ends`,
    `ladder_end_report`) and whether the burn-in stopped pushing it (`stopped_pushing`: "top"/"bottom"):
    its rho is unknown, zero or out of the sampler's reach, which the run cannot tell apart."""
    warnings, flagged = [], set()
    n_samples = np.asarray(n_samples)
    if trips["round_trips_total"] == 0:
        warnings.append(f"No walker completed a round trip (bottom -> top -> bottom of the ladder) in any "
                        f"of the {trips['num_walkers']} walkers: the ends of the ladder are not linked "
                        f"through the samples, so ln rho across the range is not trustworthy."
                        + _trip_bound_note(trips, swaps))
    elif trips["groups_without_round_trip"]:
        none = trips["groups_without_round_trip"]
        warnings.append(f"{len(none)} of {len(trips['round_trips_per_group'])} independent groups had no walker "
                        f"complete a round trip (groups {_list(none)}; total {trips['round_trips_total']} trips): "
                        f"those groups never linked the ends of their ladder, so they are not independent "
                        f"replicates of an equilibrium run and the error bars built from them are not "
                        f"trustworthy." + _trip_bound_note(trips, swaps))
    elif stuck_walkers_p_value(trips) < FAMILY_ALPHA:
        warnings.append(f"{trips['walkers_without_round_trip']} of {trips['num_walkers']} walkers never "
                        f"completed a round trip (total {trips['round_trips_total']}), more than the others' "
                        f"rate of trips leaves to chance (p = {stuck_walkers_p_value(trips):.2g}): those "
                        f"walkers stay in one stretch of the ladder.")
    rate = swaps["swap_acceptance"]
    for i in np.flatnonzero(rate < MIN_SWAP_ACCEPTANCE):
        warnings.append(f"Swap acceptance between ladder rungs {i} and {i + 1} (beta {betas[i]:.4g} and "
                        f"{betas[i + 1]:.4g}) is {rate[i]:.3f} < {MIN_SWAP_ACCEPTANCE}: the ladder has a "
                        f"gap there, and the two sides are barely linked.")
    run_wide = len(warnings)
    filled = n_samples > 0
    few = np.flatnonzero(filled & ~(stats["n_effective"] >= MIN_EFFECTIVE))
    if few.size:
        flagged.update(few.tolist())
        warnings.append(f"Too few effective independent samples (< {MIN_EFFECTIVE:g}) in "
                        f"{describe_bins(few, edges)}: their ln rho rests on a handful of visits.")
    tested = filled & (stats["n_effective"] >= MIN_EFFECTIVE)
    num_tested = int(tested.sum())
    groups, k = stats["num_groups"], stats["num_batches"]
    if num_tested and groups > 1 and k > 1:
        limit_f, limit_t = verdict_limits(num_tested, groups, k)
        bad = np.flatnonzero(tested & ~(stats["group_agreement"] <= limit_f))
        if bad.size:
            flagged.update(bad.tolist())
            warnings.append(f"The {groups} independent groups disagree about ln rho in "
                            f"{describe_bins(bad, edges)} (between-group variance up to "
                            f"{np.nanmax(stats['group_agreement'][bad]):.3g}x what their own records "
                            f"predict, limit {limit_f:.3g}).")
        drifting = np.flatnonzero(tested & ~(np.abs(stats["drift_sigma"]) <= limit_t))
        if drifting.size:
            flagged.update(drifting.tolist())
            warnings.append(f"ln rho drifts between the first and second half of the kept records in "
                            f"{describe_bins(drifting, edges)} (up to "
                            f"{np.nanmax(np.abs(stats['drift_sigma'][drifting])):.3g} standard errors, "
                            f"limit {limit_t:.3g}): the run has not reached equilibrium, so no bin's "
                            f"error bar is trustworthy.")
            # Run-wide: a run out of equilibrium moves the normalisation every bin shares, and the
            # bins next to the drifting ones drift too, below the limit (BUILD_NOTES.md: trap16x6).
            run_wide += 1
    elif groups < 2:
        warnings.append("Only one group of walkers: agreement between groups and drift cannot be checked.")
        run_wide += 1
    holes = empty_interior_bins(n_samples)
    if holes.size:
        flagged.update(holes.tolist())
        warnings.append(f"No sample fell in {describe_bins(holes, edges)}, though bins on both sides are "
                        f"filled: the samples there do not overlap, and the two sides' normalisations "
                        f"are not linked.")
    for end, index in (("bottom", 0), ("top", len(n_samples) - 1))[:min(2, len(n_samples))]:
        if n_samples[index] == 0:
            flagged.add(index)
            warnings.append(empty_end_warning(end, betas, edges, ends, end in stopped_pushing))
    if reps is not None:
        count, walkers = np.asarray(reps["representative_count"]), np.asarray(reps["representative_walkers"])
        single = np.flatnonzero(filled & (count >= MIN_REPRESENTATIVES_CHECKED) & (walkers <= 1))
        if single.size:
            flagged.update(single.tolist())
            warnings.append(f"All representatives of {describe_bins(single, edges)} come from a single walker: "
                            f"the bin was reached by one trajectory only, so its representatives (and its "
                            f"ln rho) may show one region of the inputs, not the bin.")
    return not warnings, warnings, sorted(flagged), bool(run_wide)


def wang_landau_verdict(log_f, one_over_t, visits, edges, *, log_f_final=None, flat_ratio=None,
                        flatness=None, steps=None, stopped_by=None) -> tuple[bool, list[str], list, bool]:
    """(converged, warnings, bins named) for Wang–Landau: every group in the 1/t regime, with
    ln f <= log_f_final and its histogram since the last reduction flat (min H / mean H =
    flat_ratio >= flatness) when those are given, every visited bin seen by every group, no
    empty bin between visited ones, and no empty end bin (named, as in `pt_verdict`: unvisited,
    its ln rho is -inf, which the run cannot tell from zero). (Groups' spread is the stderr itself, so there is no
    independent agreement test; no records, so no drift test.)"""
    warnings, flagged = [], set()
    one_over_t = np.asarray(one_over_t).astype(bool)
    log_f = np.asarray(log_f, np.float64)
    visits = np.asarray(visits)
    if stopped_by == "max_steps":
        warnings.append(f"The max_steps budget ({steps} steps) ran out before the stopping rule held "
                        f"(1/t regime, ln f <= {log_f_final:.3g}, histogram flat to {flatness}); "
                        f"raise max_steps.")
    if not one_over_t.all():
        warnings.append(f"{int((~one_over_t).sum())} of {one_over_t.size} Wang–Landau groups never reached the "
                        f"1/t regime (final ln f up to {float(np.max(log_f)):.3g}): ln g is still being "
                        f"shaped by the modification factor; run longer.")
    if log_f_final is not None and (log_f > np.float32(log_f_final)).any():
        high = log_f > np.float32(log_f_final)
        warnings.append(f"{int(high.sum())} of {log_f.size} Wang–Landau groups have ln f above the final "
                        f"value {log_f_final:.3g} (groups {np.flatnonzero(high).tolist()}, largest "
                        f"{float(log_f.max()):.3g}).")
    if flat_ratio is not None:
        ratio = np.asarray(flat_ratio, np.float64)
        rough = ~((ratio > 0) & (ratio >= np.float32(flatness)))
        if rough.any():
            warnings.append(f"{int(rough.sum())} of {ratio.size} Wang–Landau groups' histogram since the last "
                            f"reduction of ln f is not flat (min H / mean H {float(ratio.min()):.2f} < "
                            f"{flatness}; groups {np.flatnonzero(rough).tolist()}).")
    run_wide = bool(warnings)
    seen = visits > 0
    partial = np.flatnonzero(seen.any(axis=0) & ~seen.all(axis=0))
    if partial.size:
        flagged.update(partial.tolist())
        warnings.append(f"Only some of the {visits.shape[0]} groups visited {describe_bins(partial, edges)}: "
                        f"the groups disagree about which outputs are reachable.")
    total = visits.sum(axis=0)
    holes = empty_interior_bins(total)
    if holes.size:
        flagged.update(holes.tolist())
        warnings.append(f"No walker visited {describe_bins(holes, edges)}, though bins on both sides were "
                        f"visited.")
    if not total.any():
        flagged.update(range(total.size))
        warnings.append(f"No Wang–Landau walker entered the window [{edges[0]:.4g}, {edges[-1]:.4g}]: "
                        f"nothing was estimated (widen the bin edges or raise max_steps).")
        return False, warnings, sorted(flagged), True
    for end, index in (("bottom", 0), ("top", total.size - 1))[:min(2, total.size)]:
        if total[index] == 0:
            flagged.add(index)
            warnings.append(wang_landau_empty_end_warning(end, edges, visits.shape[0]))
    return not warnings, warnings, sorted(flagged), run_wide


def wang_landau_empty_end_warning(end: str, edges, num_groups: int) -> str:
    """The Wang–Landau verdict's sentence for an end bin ("top"/"bottom") no walker of any group
    visited: its ln rho is -inf, which means "not seen", not "no input"."""
    low, high = (edges[-2], edges[-1]) if end == "top" else (edges[0], edges[1])
    return (f"No Wang–Landau walker of the {num_groups} groups visited the {end} bin ({low:.4g} to "
            f"{high:.4g}), though other bins were visited: its ln rho of -inf means not seen, not zero. "
            f"The bin may hold no input at all, or be out of the walkers' reach "
            f"({'lower its lower' if end == 'top' else 'raise its upper'} edge, or sample longer).")
