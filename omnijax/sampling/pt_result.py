"""From a finished replica-exchange run to its estimate: MBAR of the post-burn-in records into
ln rho, error bars from the groups and from the drift between the run's halves
(`omnijax.sampling.uncertainty`), inclusion weights of the representatives, and the
convergence diagnostics with their verdict."""

from __future__ import annotations

import numpy as np

from omnijax.sampling import diagnostics as diagnostics_lib
from omnijax.sampling import histogram
from omnijax.sampling import inclusion
from omnijax.sampling import uncertainty
from omnijax.sampling.result import OutputDistributionEstimate
from omnijax.sampling.reweighting import log_rho_from_weights, mbar_log_weights


def summarize_pt_run(run, space, edges: np.ndarray, ladder: np.ndarray, burn_in: int, boot_key, *,
                     num_bootstrap: int = 100, extra_diagnostics: dict | None = None,
                     stopped_pushing=(), progress: bool = False) -> OutputDistributionEstimate:
    """The estimate of `run` (a `replica_exchange_run.TemperingRun` over `ladder`): only records after
    step `burn_in` are reweighted; `extra_diagnostics` are added to est.diagnostics as given;
    stopped_pushing: the ends ("top"/"bottom") the burn-in stopped pushing outwards because their
    output no longer moved (the verdict's sentence on an empty end bin says so); progress: the
    bootstrap reports on stderr."""
    kept = run.record_step > burn_in
    z, slot = run.z[kept], run.slot[kept]
    flat_z, flat_slot = z.reshape(-1), slot.reshape(-1)
    if num_bootstrap == 0:  # ln rho from the weights: one solve
        log_w, free_energies = mbar_log_weights(flat_z, flat_slot, ladder)
        boot = uncertainty.without_error_bars(log_rho_from_weights(log_w, z, edges), histogram.bin_counts(z, edges))
    elif uncertainty.thinning(z.shape) > 1:  # the bootstrap solves every k-th record: all records' weights first
        log_w, free_energies = mbar_log_weights(flat_z, flat_slot, ladder)
        boot = uncertainty.log_rho_with_error_bars(z, slot, ladder, edges, boot_key, num_bootstrap=num_bootstrap,
                                                   progress=progress, log_w=log_w)
    else:  # the bootstrap's solve of all records gives their weights: no second solve
        boot = uncertainty.log_rho_with_error_bars(z, slot, ladder, edges, boot_key, num_bootstrap=num_bootstrap,
                                                   progress=progress)
        log_w, free_energies = boot.log_w, boot.free_energies
    replica_records = np.bincount(flat_slot, minlength=len(ladder)).astype(np.float64)
    log_visits = inclusion.log_expected_visits(flat_z, ladder, free_energies, replica_records, space.log_size)
    record_bins = np.asarray(histogram.bin_index(flat_z, edges))
    num_held = np.isfinite(np.asarray(run.reservoir.priority)).sum(axis=1)
    reservoir_log_c = np.array([inclusion.fit_log_c(log_visits[record_bins == b], int(num_held[b]))
                                for b in range(len(edges) - 1)])
    state = run.state
    diagnostics = {
        "swap_acceptance": (np.asarray(state.swap_accepts).sum(axis=0)
                            / np.maximum(np.asarray(state.swap_attempts).sum(axis=0), 1)),
        "mh_acceptance": (np.asarray(state.mh_accepts).sum(axis=0)
                          / np.maximum(np.asarray(state.mh_attempts).sum(axis=0), 1)),
        "round_trips": np.asarray(state.round_trips),
        "num_steps": int(np.asarray(state.step)[0]),
        **error_bar_diagnostics(boot),
        **(extra_diagnostics or {}),
    }
    diagnostics.update(convergence_diagnostics(
        state, ladder, edges, np.asarray(log_w).reshape(z.shape),
        np.asarray(histogram.bin_index(z, edges)), np.asarray(boot.n_samples), run.reservoir,
        ends=diagnostics_lib.ladder_end_report(run.z, run.slot, len(ladder)), stopped_pushing=stopped_pushing))
    return OutputDistributionEstimate(
        space=space, bin_edges=edges, log_rho=np.asarray(boot.log_rho, np.float64),
        log_rho_stderr=np.asarray(boot.stderr, np.float64),
        log_rho_ci_low=np.asarray(boot.ci_low, np.float64), log_rho_ci_high=np.asarray(boot.ci_high, np.float64),
        n_samples=np.asarray(boot.n_samples), method="pt", betas=ladder, diagnostics=diagnostics,
        representative_inputs=np.asarray(run.reservoir.x),
        representative_priority=np.asarray(run.reservoir.priority),
        representative_z=np.asarray(run.reservoir.z),
        replica_free_energies=np.asarray(free_energies, np.float64), replica_records=replica_records,
        reservoir_log_c=reservoir_log_c, representative_tags=np.asarray(run.reservoir.tags))


def error_bar_diagnostics(boot: uncertainty.LogRhoErrorBars) -> dict:
    """The parts of log_rho_stderr (`omnijax.sampling.uncertainty`) and what the bootstrap cost."""
    return {"log_rho_stderr_bootstrap": boot.stderr_bootstrap, "log_rho_bias": boot.bias,
            "log_rho_half_drift": boot.drift, "log_rho_half_drift_stderr": boot.drift_stderr,
            "bootstrap_seconds": boot.bootstrap_seconds, "bootstrap_iterations": boot.bootstrap_iterations}


def convergence_diagnostics(state, ladder, edges, log_w, record_bins, n_samples, reservoir=None, *,
                            ends: dict | None = None, stopped_pushing=()) -> dict:
    """Round trips, swap acceptance, group agreement, drift and effective samples of a run
    (`omnijax.sampling.diagnostics`), and, given the reservoir, per bin the distinct walkers
    ("representative_walkers") and distinct (walker, round trips) pairs ("representative_round_trips")
    its representatives come from; with the verdict: "converged" (bool), "warnings" (plain
    sentences naming the bins, pairs or walkers concerned), "unconverged_bins" (named bins) and
    "bin_converged" (bool per bin, all False after a run-wide warning). `ends`
    (`diagnostics.ladder_end_report`) and `stopped_pushing` go into the sentence on an empty end bin."""
    trips = diagnostics_lib.round_trip_report(state.round_trips)
    swaps = diagnostics_lib.swap_report(state.swap_accepts, state.swap_attempts, ladder)
    stats = diagnostics_lib.group_statistics(log_w, record_bins, len(edges) - 1)
    reps = (None if reservoir is None
            else diagnostics_lib.representative_report(reservoir.tags, reservoir.priority))
    converged, warnings, bins, run_wide = diagnostics_lib.pt_verdict(trips, swaps, stats, ladder, edges,
                                                                     n_samples, reps, ends=ends,
                                                                     stopped_pushing=stopped_pushing)
    return {**trips, **swaps, **stats, **(reps or {}), **(ends or {}), "converged": bool(converged),
            "warnings": warnings,
            "unconverged_bins": bins, "bin_converged": diagnostics_lib.bin_verdict(len(edges) - 1, bins, run_wide)}
