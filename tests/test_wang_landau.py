"""Gradient Wang–Landau: the kernel samples its target, the estimate matches exact enumeration
with honest error bars, a killed run resumes bit-identically, bad knobs and NaN are reported."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from omnijax.sampling import driver
from omnijax.sampling import wang_landau_estimate as wang_landau
from omnijax.sampling.checkpoint import RunCheckpointer
from omnijax.sampling.enumerate import enumerate_output_distribution
from omnijax.sampling.estimate import estimate_output_distribution
from omnijax.sampling.histogram import bin_index
from omnijax.sampling.mcmc import wang_landau_kernel as kernel
from omnijax.sampling.proposals import gwg
from omnijax.sampling.driver import NonFiniteOutputError
from omnijax.sampling.spaces import InputSpace
from omnijax.sampling.targets import as_target, make_value_and_grad
from omnijax.sampling.wang_landau_estimate import estimate_wang_landau
from tests.models import all_inputs, outputs_of, random_mlp

SPACE = InputSpace((4, 4), 2)
RUN = dict(num_steps=20_000, steps_per_block=5_000, progress=False)  # default 4 groups of 8 walkers


@pytest.fixture(scope="module")
def mlp():
    """A random MLP over 4x4 binary inputs, 24 bins spanning its exact output range."""
    output_fn = as_target(random_mlp(SPACE, seed=0))  # estimate_wang_landau takes a Target
    z = outputs_of(output_fn, SPACE, all_inputs(SPACE))
    pad = 1e-4 * (z.max() - z.min())
    edges = np.linspace(z.min() - pad, z.max() + pad, 25)
    return output_fn, edges, enumerate_output_distribution(output_fn, SPACE, edges, progress=False)


class _DiskStopsAfterBlock1(RunCheckpointer):
    """Writes checkpoints of blocks 0 and 1 only: the disk a run killed after block 1 leaves."""

    def save(self, block, state):
        if block <= 1:
            super().save(block, state)


@pytest.fixture(scope="module")
def run(mlp, tmp_path_factory):
    """An uninterrupted run, and a checkpoint_dir holding what a kill after block 1 leaves."""
    output_fn, edges, _ = mlp
    directory = tmp_path_factory.mktemp("killed_after_block_1")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(driver, "RunCheckpointer", _DiskStopsAfterBlock1)
        estimate = estimate_wang_landau(output_fn, SPACE, edges, key=jax.random.key(0),
                                        checkpoint_dir=directory, **RUN)
    return estimate, directory


def _per_bin(z, edges):
    """How many outputs fall in each bin (those outside the edges are not counted)."""
    bins = np.asarray(bin_index(z, edges))
    return np.bincount(bins[(bins >= 0) & (bins < len(edges) - 1)], minlength=len(edges) - 1)


def test_kernel_with_fixed_log_g_samples_its_target():
    """With ln f = 0, ln g stays put and the walkers must sample pi ∝ exp(-ln g(bin)) inside the
    window: the state-dependent beta (forward at x, reverse at x') keeps MH exact."""
    space = InputSpace((10,), 2)
    output_fn = as_target(random_mlp(space, seed=3))
    z = outputs_of(output_fn, space, all_inputs(space)).astype(np.float32)
    edges = np.quantile(z, np.linspace(0.1, 0.9, 9))  # walkers start outside too: the pull brings them in
    counts = _per_bin(z, edges)
    log_g = np.log(counts) + np.random.default_rng(0).normal(0.0, 1.5, 8)  # a rough, uneven target
    target = counts * np.exp(-log_g)
    target /= target.sum()

    num_walkers = 1024
    vg, proposal = make_value_and_grad(output_fn, space), gwg(space)
    # A steep clip (4 per bin width): beta_eff changes a lot from bin to bin, which is where
    # scoring the reverse move with beta(x) instead of beta(x') would show (chi2 in the hundreds).
    window = kernel.make_window(edges, beta_clip=4 * 8 / (edges[-1] - edges[0]), kappa=2.0)

    @jax.jit
    def sample(key, params):
        init_key, run_key = jax.random.split(key)
        state = kernel.init(space.random_inputs(init_key, num_walkers), params, vg, proposal, 8, log_f_initial=0.0)
        state = state._replace(log_g=jnp.asarray(log_g, jnp.float32), visits=jnp.ones(8, jnp.int32))
        step = lambda s, k: (kernel.step(k, s, window, params, vg, proposal)[0], None)
        return jax.lax.scan(step, state, jax.random.split(run_key, 300))[0]

    final = sample(jax.random.key(1), output_fn.params)
    np.testing.assert_array_equal(final.log_g, log_g.astype(np.float32))
    found = _per_bin(final.chains.z, edges)
    assert found.sum() == num_walkers  # everyone entered the window and stayed
    chi2 = np.sum((found - num_walkers * target) ** 2 / (num_walkers * target))
    assert chi2 < 26.0  # chi-square, 7 degrees of freedom, p = 0.0005


def test_matches_exact_enumeration(mlp, run):
    _, edges, exact = mlp
    estimate, _ = run
    filled = exact.counts >= 20
    diff = estimate.log_rho[filled] - exact.log_rho[filled]
    error = diff - np.average(diff, weights=exact.counts[filled])  # ln rho up to a constant
    stderr = estimate.log_rho_stderr[filled]
    coverage = np.mean(np.abs(error) <= 2 * stderr)
    print(f"\nwang-landau vs exact over {filled.sum()} bins: max |error| {np.abs(error).max():.4f}, "
          f"median stderr {np.median(stderr):.4f}, coverage at 2 stderr {coverage:.3f}")
    assert np.abs(error).max() <= 0.15
    assert coverage >= 0.9
    # Every input lies in the window, so rho sums to 1 and every bin was visited.
    assert np.logaddexp.reduce(estimate.log_rho) == pytest.approx(0.0, abs=1e-9)
    np.testing.assert_allclose(estimate.log_rho_ci_low, estimate.log_rho - 1.96 * estimate.log_rho_stderr)
    np.testing.assert_allclose(estimate.log_rho_ci_high, estimate.log_rho + 1.96 * estimate.log_rho_stderr)
    assert estimate.method == "wang_landau" and estimate.betas is None
    assert estimate.n_samples.sum() == RUN["num_steps"] * 4 * 8
    d = estimate.diagnostics
    assert d["window_fraction"] == 1.0 and d["num_steps"] == RUN["num_steps"]
    assert np.all(d["one_over_t"]) and np.all(d["halvings"] > 5)
    # ln f = N / t: 24 bins, t = every step of every walker of the group.
    np.testing.assert_allclose(d["final_log_f"], 24 / (RUN["num_steps"] * 8), rtol=1e-5)


def test_representatives_are_distinct_inputs_of_their_bin(mlp, run):
    output_fn, edges, exact = mlp
    estimate, _ = run
    reps = [estimate.representatives(b).reshape(-1, SPACE.num_positions) for b in range(estimate.num_bins)]
    for b, x in enumerate(reps):
        assert 0 < len(x) <= 32 and (len(x) == 32 or exact.counts[b] < 100)
        assert len(np.unique(x, axis=0)) == len(x)
    z = outputs_of(output_fn, SPACE, np.concatenate(reps)).astype(np.float32)
    owner = np.repeat(np.arange(estimate.num_bins), [len(x) for x in reps])
    np.testing.assert_array_equal(np.asarray(bin_index(z, edges)), owner)
    kept = np.concatenate([estimate.representative_outputs(b) for b in range(estimate.num_bins)])
    np.testing.assert_allclose(kept, z, rtol=1e-5, atol=1e-5)


def count_blocks_run(monkeypatch) -> list:
    """A list that gains one entry per Wang–Landau block program called from now on."""
    blocks_run = []
    make_block = wang_landau._block_fn

    def counting_block_fn(*args):
        block = make_block(*args)
        return lambda *a: blocks_run.append(1) or block(*a)

    monkeypatch.setattr(wang_landau, "_block_fn", counting_block_fn)
    return blocks_run


def test_killed_run_resumes_bit_identical(mlp, run, monkeypatch):
    output_fn, edges, _ = mlp
    estimate, directory = run
    blocks_run = count_blocks_run(monkeypatch)
    resumed = estimate_wang_landau(output_fn, SPACE, edges, key=jax.random.key(0), checkpoint_dir=directory,
                                   **RUN)
    assert len(blocks_run) == 2  # blocks 2 and 3: blocks 0 and 1 came from the checkpoint
    for field in ("log_rho", "log_rho_stderr", "log_rho_ci_low", "log_rho_ci_high", "n_samples",
                  "representative_inputs", "representative_priority", "representative_z"):
        np.testing.assert_array_equal(getattr(resumed, field), getattr(estimate, field), err_msg=field)
    for name in ("final_log_f", "halvings", "acceptance", "log_rho_per_group"):
        np.testing.assert_array_equal(resumed.diagnostics[name], estimate.diagnostics[name], err_msg=name)

    with pytest.raises(ValueError, match="checkpoint_dir"):  # another run's directory
        estimate_wang_landau(output_fn, SPACE, edges, key=jax.random.key(0), checkpoint_dir=directory,
                             **{**RUN, "flatness": 0.7})


def test_rare_tail_window_is_reached_and_normalised_within(mlp):
    """A window over the top ~1% of outputs: no uniform probe lands there, so the walkers are
    pulled in from outside and ln rho is the distribution WITHIN the window."""
    output_fn, _, _ = mlp
    z = np.sort(outputs_of(output_fn, SPACE, all_inputs(SPACE)))
    edges = np.linspace(z[-600], z[-1] + 1e-4, 7)
    exact = enumerate_output_distribution(output_fn, SPACE, edges, progress=False)
    estimate = estimate_wang_landau(output_fn, SPACE, edges, key=jax.random.key(0), num_groups=4,
                                    walkers_per_group=4, num_steps=4_000, num_probe=32, progress=False)
    assert estimate.diagnostics["window_fraction"] == 0.0
    assert "WITHIN the window" in estimate.diagnostics["normalization"]
    assert np.logaddexp.reduce(estimate.log_rho) == pytest.approx(0.0, abs=1e-9)
    within = np.log(exact.counts / exact.counts.sum())
    error = estimate.log_rho - within
    print(f"\ntail window {exact.counts}: error {np.round(error, 3)}")
    assert np.abs(error).max() <= 0.15


def test_nonfinite_output_names_group_walker_and_step():
    """Through the public entry point: a walker that proposes the one NaN input is reported."""
    space = InputSpace((12,), 2)

    def ones_but_nan_when_all_set(onehot):
        ones = onehot[:, 1].sum()
        return jnp.where(ones > 11.5, jnp.nan, ones)

    with pytest.raises(NonFiniteOutputError, match=r"walker \d+ of group \d+ at step \d+"):
        estimate_output_distribution(ones_but_nan_when_all_set, space, np.arange(-0.5, 13.0),
                                     key=jax.random.key(0), method="wang_landau", num_steps=2_000,
                                     num_probe=64, progress=False)


SMALL = dict(num_steps=100, progress=False)
BAD_KNOBS = [
    ("num_groups", 0), ("walkers_per_group", 2.5), ("num_steps", 0), ("steps_per_block", -1),
    ("check_every", 0), ("record_every", True), ("num_probe", 0), ("reservoir_size", 0),
    ("flatness", 1.0), ("flatness", float("nan")), ("log_f_initial", 0.0), ("beta_clip", -1.0),
    ("burn_in", 100), ("burn_in", -1), ("no_such_knob", 1),
]


@pytest.mark.parametrize("name, value", BAD_KNOBS + [("proposal", "nope")])
def test_bad_arguments_raise_value_errors_naming_them(mlp, name, value):
    output_fn, edges, _ = mlp
    with pytest.raises(ValueError, match=name):
        estimate_wang_landau(output_fn, SPACE, edges, key=jax.random.key(0), **{**SMALL, name: value})


@pytest.mark.parametrize("name, value", BAD_KNOBS)
def test_public_entry_point_forwards_every_knob(mlp, name, value):
    """estimate_output_distribution(method="wang_landau") must pass each knob on. Every knob is
    checked before the proposal name, so a knob that is dropped on the way fails fast on "nope"."""
    output_fn, edges, _ = mlp
    with pytest.raises(ValueError, match=name):
        estimate_output_distribution(output_fn, SPACE, edges, key=jax.random.key(0), method="wang_landau",
                                     **{**SMALL, "proposal": "nope", name: value})
