"""A checkpoint directory is resumed only by the run that wrote it.

For method="pt" and method="wang_landau": a completed run in `checkpoint_dir`, then the
same directory with a space that differs ONLY in its frozen mask, ONLY in its frozen values,
or a model of the same architecture with other weights (an NNX module, and a plain function
closing over its weights) is refused with a ValueError naming checkpoint_dir and exactly
what differs, and not one byte, name or mtime in the directory changes. The same run
resumes and returns bit-identical results. A Wang–Landau run killed by SIGKILL resumes
bit-identically (replica exchange: tests/test_resume.py).
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import omnijax as oj
from tests import kill_resume_job
from tests.models import all_inputs, outputs_of, random_mlp
from tests.directory_state import directory_listing, kill_after_first_checkpoint

D = 10


def _space(frozen_at, values_at):
    mask = np.zeros(D, bool)
    mask[list(frozen_at)] = True
    values = np.zeros(D, np.int32)
    values[list(values_at)] = 1
    return oj.InputSpace((D,), 2, frozen_mask=mask, frozen_values=values)


# Positions 0 and 1 frozen, to 1 and 0. The variants differ from it in ONE fingerprint entry
# each: the space keeps frozen_values only at frozen positions, so moving the second frozen
# position from 1 to 2 (both hold 0) changes the mask alone.
SPACE = _space(frozen_at=(0, 1), values_at=(0,))
OTHER_MASK = _space(frozen_at=(0, 2), values_at=(0,))
OTHER_VALUES = _space(frozen_at=(0, 1), values_at=())
assert np.array_equal(SPACE.frozen_values, OTHER_MASK.frozen_values)
assert not np.array_equal(SPACE.frozen_mask, OTHER_MASK.frozen_mask)
assert np.array_equal(SPACE.frozen_mask, OTHER_VALUES.frozen_mask)
assert not np.array_equal(SPACE.frozen_values, OTHER_VALUES.frozen_values)

KEY = 3
METHODS = {
    "pt": dict(method="pt", betas=[-0.9, -0.3, 0.3, 0.9], num_groups=2, num_steps=400, steps_per_block=100,
               swap_every=10, record_every=10, pilot_steps=50, reservoir_size=4, num_bootstrap=10),
    "wang_landau": dict(method="wang_landau", num_groups=2, walkers_per_group=4, num_steps=400,
                        steps_per_block=100, check_every=50, beta_clip=1.0, num_probe=256, reservoir_size=4),
}


# The other weights: one output weight moved by 1e-3, so the output range (and so whether
# the ladder reaches the bins) stays the same; only the parameter digest can tell them apart.
NUDGE = 1e-3


def nnx_model(nudged):
    model = random_mlp(SPACE, seed=0)
    if nudged:
        model.out.kernel[...] = model.out.kernel[...].at[0, 0].add(NUDGE)
    return model


def closure_model(nudged, hidden=8):
    """A plain output_fn(onehot) closing over its weights (the same code either way)."""
    k1, k2, k3 = jax.random.split(jax.random.key(0), 3)
    w1 = jax.random.normal(k1, (D * 2, hidden)) / np.sqrt(D)
    b1 = jax.random.normal(k2, (hidden,)) * 0.1
    w2 = jax.random.normal(k3, (hidden,)) * 2.0
    if nudged:
        w2 = w2.at[0].add(NUDGE)

    def output_fn(onehot):
        return jnp.tanh(onehot.reshape(-1) @ w1 + b1) @ w2

    return output_fn


MODELS = {"nnx": nnx_model, "closure": closure_model}


def edges_for(model):
    """Bins over the middle of the model's exact output range on SPACE (every variant's pilot
    reaches them at the +-0.9 ends of the pt ladder)."""
    z = outputs_of(model, SPACE, all_inputs(SPACE))
    return np.linspace(np.quantile(z, 0.2), np.quantile(z, 0.8), 7)


def estimate(model, space, edges, directory, method):
    return oj.estimate_output_distribution(model, space, edges, key=jax.random.key(KEY), checkpoint_dir=directory,
                                           progress=False, **METHODS[method])


def as_arrays(est):
    arrays = dict(log_rho=est.log_rho, stderr=est.log_rho_stderr, ci_low=est.log_rho_ci_low,
                  ci_high=est.log_rho_ci_high, n=est.n_samples, reps=est.representative_inputs,
                  prio=est.representative_priority, reps_z=est.representative_z)
    for name in ("swap_acceptance", "round_trips", "final_log_f", "halvings", "log_rho_per_group"):
        if name in est.diagnostics:
            arrays[name] = np.asarray(est.diagnostics[name])
    return arrays


@pytest.mark.parametrize("form", list(MODELS))
@pytest.mark.parametrize("method", list(METHODS))
def test_another_run_is_refused_and_the_directory_untouched(tmp_path, method, form):
    model, other_weights = MODELS[form](False), MODELS[form](True)
    edges = edges_for(model)
    directory = str(tmp_path / "ckpt")
    first = estimate(model, SPACE, edges, directory, method)
    assert np.isfinite(first.log_rho).any()
    saved = directory_listing(directory)
    assert any(name.isdigit() for name in saved), f"no checkpoint written: {sorted(saved)}"

    for model_used, space, differs in [(model, OTHER_MASK, "frozen_mask"), (model, OTHER_VALUES, "frozen_values"),
                                       (other_weights, SPACE, "model_parameters")]:
        with pytest.raises(ValueError, match="checkpoint_dir") as refused:
            estimate(model_used, space, edges, directory, method)
        message = str(refused.value)
        named = re.search(r"differs in: ([^)]*)\)", message)
        assert named, message
        assert named.group(1).split(", ") == [differs], message  # that, and nothing else
        assert directory_listing(directory) == saved, f"the refused run ({differs}) changed {directory}"

    resumed = estimate(model, SPACE, edges, directory, method)  # same run: resumes, nothing to do
    again, before = as_arrays(resumed), as_arrays(first)
    assert again.keys() == before.keys()
    for name in before:
        np.testing.assert_array_equal(again[name], before[name], err_msg=name)


@pytest.mark.parametrize("form", list(MODELS))
def test_the_other_weights_are_another_model(form):
    """The nudged weights give other outputs (so resuming with them would mix two models)."""
    z = outputs_of(MODELS[form](False), SPACE, all_inputs(SPACE))
    z_nudged = outputs_of(MODELS[form](True), SPACE, all_inputs(SPACE))
    assert 0 < np.abs(z - z_nudged).max() < 10 * NUDGE


def test_wang_landau_killed_by_sigkill_resumes_bit_identical(tmp_path, capfd):
    ckpt = str(tmp_path / "ckpt")
    saved = kill_after_first_checkpoint("tests.kill_resume_job", [ckpt], ckpt)
    num_blocks = kill_resume_job.OPTIONS["num_steps"] // kill_resume_job.OPTIONS["steps_per_block"]
    assert max(saved) < num_blocks - 1, "killed too late: the run had already finished"

    resumed = kill_resume_job.as_arrays(kill_resume_job.run(ckpt, progress=True))
    progress = capfd.readouterr().err.splitlines()
    first_line = next(line for line in progress if line.startswith("wang-landau"))
    done = (max(saved) + 1) * kill_resume_job.OPTIONS["steps_per_block"]
    assert f" {done}/{kill_resume_job.OPTIONS['num_steps']} " in first_line, first_line  # it resumed there

    uninterrupted = kill_resume_job.as_arrays(kill_resume_job.run(str(tmp_path / "fresh")))
    for name in uninterrupted:
        np.testing.assert_array_equal(resumed[name], uninterrupted[name], err_msg=name)
    reps = resumed["reps"].reshape(-1, kill_resume_job.SPACE.num_positions)
    held = np.isfinite(resumed["prio"].reshape(-1))
    frozen = kill_resume_job.SPACE.frozen_mask
    assert np.all(reps[held][:, frozen] == kill_resume_job.SPACE.frozen_values[frozen])
