"""The result of sampling: ln rho per bin with its error bars, diagnostics, and the
representative inputs kept per bin (with the weights that make them a uniform sample)."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from omnijax.sampling import inclusion
from omnijax.sampling import reservoir as reservoir_lib
from omnijax.sampling.spaces import InputSpace


@dataclasses.dataclass(frozen=True, eq=False)
class OutputDistributionEstimate:
    """ln rho per bin (ln of the fraction of ALL inputs whose output falls in the bin) and the
    representative inputs the sampler kept per bin."""

    space: InputSpace
    bin_edges: np.ndarray
    log_rho: np.ndarray          # -inf where no sample fell
    log_rho_stderr: np.ndarray   # bootstrap over independent chain groups; inf where undetermined
    log_rho_ci_low: np.ndarray   # 95% bootstrap percentile interval
    log_rho_ci_high: np.ndarray
    n_samples: np.ndarray        # samples (records after burn-in) per bin
    method: str
    betas: np.ndarray | None
    diagnostics: dict[str, Any]
    representative_inputs: np.ndarray   # (B, capacity, D) flat; see `representatives`
    representative_priority: np.ndarray  # (B, capacity), +inf marks an empty slot
    representative_z: np.ndarray         # (B, capacity)
    # method="pt": how the records mix the replicas, so a sample can be weighted back to uniform.
    replica_free_energies: np.ndarray | None = None  # (R,) F_r = ln E_uniform[exp(beta_r z)] (MBAR)
    replica_records: np.ndarray | None = None        # (R,) records per replica after burn-in
    reservoir_log_c: np.ndarray | None = None        # (B,) per-bin constant of `omnijax.sampling.inclusion`
    # (B, capacity, 2) int32 per kept input: (flat walker index g*R + r, that walker's round trips
    # at insertion); see `omnijax.sampling.reservoir`. None where the method did not record them.
    representative_tags: np.ndarray | None = None

    @property
    def num_bins(self) -> int:
        return len(self.bin_edges) - 1

    def _check_bin(self, bin_index) -> int:
        if not isinstance(bin_index, (int, np.integer)) or not 0 <= bin_index < self.num_bins:
            raise ValueError(f"bin_index must be an int in [0, {self.num_bins}), got {bin_index!r}")
        return int(bin_index)

    def _held(self, bin_index) -> tuple[np.ndarray, np.ndarray]:
        reservoir = reservoir_lib.Reservoir(self.representative_inputs, self.representative_z,
                                            self.representative_priority, None, self.representative_tags)
        return reservoir_lib.contents(reservoir, self._check_bin(bin_index))

    def representative_provenance(self, bin_index: int) -> np.ndarray:
        """(walker index g*R + r, that walker's round trips when it was kept) of each of
        `representatives(bin_index)`, int32 of shape (n, 2), same order."""
        if self.representative_tags is None:
            raise ValueError(f"this estimate (method={self.method!r}) recorded no representative provenance")
        reservoir = reservoir_lib.Reservoir(self.representative_inputs, self.representative_z,
                                            self.representative_priority, None, self.representative_tags)
        return reservoir_lib.held_tags(reservoir, self._check_bin(bin_index))

    def representatives(self, bin_index: int) -> np.ndarray:
        """Distinct sampled inputs of one bin, int32 of shape (n, *space.shape)."""
        return self._held(bin_index)[0].reshape((-1,) + self.space.shape)

    def representative_outputs(self, bin_index: int) -> np.ndarray:
        """Model outputs of `representatives(bin_index)`, same order."""
        return self._held(bin_index)[1]

    def log_expected_visits(self, z) -> np.ndarray:
        """ln of how many kept records are expected to hold ONE given input with output z
        (`omnijax.sampling.inclusion`; method="pt" only)."""
        if self.replica_free_energies is None:
            raise ValueError(f"log_expected_visits needs a replica-exchange estimate (method='pt'), "
                             f"this one is method={self.method!r}")
        return inclusion.log_expected_visits(z, self.betas, self.replica_free_energies, self.replica_records,
                                             self.space.log_size)

    def representative_weights(self, bin_index: int) -> np.ndarray:
        """Weights (summing to 1) that make `representatives(bin_index)` a sample of the bin's inputs.

        Each representative weighs 1 / (its probability of having been kept), which
        `omnijax.sampling.inclusion` derives from how often replica exchange visits its output and how the
        reservoir keeps visited inputs: the inverse replica mixture (the MBAR weight) while visits
        are rare, which undoes the tilt of replica exchange towards one end of a wide bin; equal
        weights where the sampler exhausted the bin. Wang–Landau samples are flat within a bin, so
        there the weights are equal.
        """
        z = self.representative_outputs(bin_index)
        if self.reservoir_log_c is None or not len(z):
            return np.full(len(z), 1.0 / max(len(z), 1))
        log_w = -inclusion.log_kept_probability(self.log_expected_visits(z), self.reservoir_log_c[bin_index])
        w = np.exp(log_w - log_w.max())
        return w / w.sum()
