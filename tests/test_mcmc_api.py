"""The public kernel API (`oj.mcmc`) as a new user composes it: init/step of each
SamplingAlgorithm under jit and vmap, checked against exact enumeration; a state is never
stepped at another beta; the model's parameters are arguments of the compiled step; bad
input is a ValueError naming the argument.

Statistics: each chain (single-beta kernels) or group (replica exchange) is started
independently, so its time average after burn-in is one independent number. The standard
error of the mean over them is their std / sqrt(count), and every estimate must lie within
4 such errors of the exact tilted mean sum_x z e^{beta z} / sum_x e^{beta z}, at EVERY beta.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import omnijax as oj
from omnijax.models.mlp import MLP
from omnijax.sampling.mcmc import replica_exchange_kernel
from omnijax.sampling.proposals import gwg as gwg_proposal
from tests.models import all_inputs, outputs_of, random_mlp

BINARY = oj.InputSpace((12,), 2)       # 4,096 inputs
TERNARY = oj.InputSpace((7,), 3)       # 2,187 inputs
SPACES = {"binary": BINARY, "ternary": TERNARY}
SEEDS = {"binary": 0, "ternary": 1}
LADDER = np.array([-1.5, -0.5, 0.0, 0.7, 1.5])  # in units of 1 / std(z) over the whole space
NUM_INDEPENDENT = 256   # groups (replica exchange) or chains (single-beta kernels)
NUM_STEPS, BURN_IN = 1_500, 300
MAX_DEVIATION = 4.0     # standard errors


@functools.cache
def exact_model(space_name):
    """(model, every input's output z as float64) of the space's random MLP."""
    space = SPACES[space_name]
    model = random_mlp(space, seed=SEEDS[space_name])
    return model, outputs_of(model, space, all_inputs(space))


def tilted_means(z, betas):
    """sum_x z e^{beta z} / sum_x e^{beta z} for each beta, from every output z of the space."""
    log_w = np.asarray(betas, np.float64)[:, None] * (z - z.mean())[None, :]
    w = np.exp(log_w - log_w.max(axis=1, keepdims=True))
    return (w * z).sum(axis=1) / w.sum(axis=1)


def check_within_errors(per_run_means, exact, what):
    """per_run_means (runs, betas): one independent time average per run and beta."""
    runs = per_run_means.shape[0]
    estimate = per_run_means.mean(axis=0)
    stderr = per_run_means.std(axis=0, ddof=1) / math.sqrt(runs)
    deviation = (estimate - exact) / stderr
    print(f"\n{what}: exact {np.round(exact, 4)}\n  sampled {np.round(estimate, 4)} "
          f"stderr {np.round(stderr, 4)} deviation/stderr {np.round(deviation, 2)}")
    assert np.all(stderr > 0)
    assert np.all(np.abs(deviation) < MAX_DEVIATION), f"{what}: {np.round(deviation, 2)} standard errors off"


def drive(step, state, key, num_steps=NUM_STEPS, burn_in=BURN_IN, num=NUM_INDEPENDENT):
    """Call the compiled `step` (keys, state) in a Python loop; returns the final state and
    the states' (z, slot-or-None) after burn-in, stacked on a leading time axis."""
    kept_z, kept_slot = [], []
    for i in range(num_steps):
        state, _ = step(jax.random.split(jax.random.fold_in(key, i), num), state)
        if i >= burn_in:
            kept_z.append(state.z if isinstance(state, oj.mcmc.MHState) else state.chains.z)
            kept_slot.append(None if isinstance(state, oj.mcmc.MHState) else state.slot)
    z = np.stack(jax.device_get(kept_z)).astype(np.float64)  # one transfer, not one op of 1,200 operands
    slot = None if kept_slot[0] is None else np.stack(jax.device_get(kept_slot))
    return state, z, slot


@pytest.mark.parametrize("space_name", list(SPACES))
def test_replica_exchange_composed_by_hand_samples_every_beta(space_name):
    """vmap(init) over many groups, jit(vmap(step)) in a Python loop, a ladder with negative
    betas: the z of the walker at each ladder slot has the exact tilted mean of that slot's beta."""
    space = SPACES[space_name]
    model, z_all = exact_model(space_name)
    betas = LADDER / z_all.std()
    rx = oj.mcmc.replica_exchange(model, space, betas)
    num_rungs = len(betas)
    x0 = space.random_inputs(jax.random.key(10), NUM_INDEPENDENT * num_rungs)
    state = jax.vmap(rx.init)(x0.reshape(NUM_INDEPENDENT, num_rungs, *space.shape))
    state, z, slot = drive(jax.jit(jax.vmap(rx.step)), state, jax.random.key(11))
    # z of the walker holding slot r at each time: (time, group, slot).
    at_slot = np.stack([np.where(slot == r, z, 0.0).sum(axis=-1) for r in range(num_rungs)], axis=-1)
    assert np.all((slot == np.arange(num_rungs)[:, None, None, None]).sum(axis=0) == 1)  # a permutation
    check_within_errors(at_slot.mean(axis=0), tilted_means(z_all, betas), f"replica exchange, {space_name}")
    # The walkers really moved between rungs (else this would test five separate MH chains).
    swap_rate = np.asarray(state.swap_accepts).sum(0) / np.asarray(state.swap_attempts).sum(0)
    assert np.all(swap_rate > 0.2), swap_rate
    np.testing.assert_allclose(np.asarray(state.betas[0]), betas, rtol=1e-6)


def test_replica_exchange_check_catches_stale_summaries(monkeypatch):
    """Negative control: the same check, on a kernel that swaps betas but does NOT refresh the
    walkers' proposal summaries at their new betas, fails (the check has the power to see it)."""
    monkeypatch.setattr(replica_exchange_kernel, "refresh_summaries", lambda state, proposal: state)
    with pytest.raises(AssertionError, match="standard errors off"):
        test_replica_exchange_composed_by_hand_samples_every_beta("ternary")


@pytest.mark.parametrize("space_name", list(SPACES))
@pytest.mark.parametrize("kernel", ["gwg", "dlp"])
@pytest.mark.parametrize("beta_units", [-1.5, 1.2])
def test_single_beta_kernel_samples_its_beta(kernel, space_name, beta_units):
    space = SPACES[space_name]
    model, z_all = exact_model(space_name)
    beta = beta_units / z_all.std()
    algo = getattr(oj.mcmc, kernel)(model, space, beta=beta)
    state = jax.jit(jax.vmap(algo.init))(space.random_inputs(jax.random.key(20), NUM_INDEPENDENT))
    state, z, _ = drive(jax.jit(jax.vmap(algo.step)), state, jax.random.key(21))
    assert state.beta == beta
    check_within_errors(z.mean(axis=0)[:, None], tilted_means(z_all, [beta]),
                        f"{kernel} at beta={beta:.3f}, {space_name}")


# --- a state belongs to the beta it was built for ----------------------------------------

@pytest.fixture(scope="module")
def binary_model():
    return exact_model("binary")[0]


@pytest.mark.parametrize("how", ["plain", "jit", "vmap", "jit_vmap"])
def test_state_of_another_beta_is_refused(binary_model, how):
    at_0 = oj.mcmc.gwg(binary_model, BINARY, beta=0.0)
    at_15 = oj.mcmc.gwg(binary_model, BINARY, beta=1.5)
    x = BINARY.random_inputs(jax.random.key(0), 4)
    keys = jax.random.split(jax.random.key(1), 4)
    if how in ("plain", "jit"):
        state, key = at_0.init(x[0]), keys[0]
        call = at_15.step if how == "plain" else jax.jit(at_15.step)
    else:
        state, key = jax.vmap(at_0.init)(x), keys
        call = jax.vmap(at_15.step) if how == "vmap" else jax.jit(jax.vmap(at_15.step))
    with pytest.raises(ValueError, match=r"beta=0\.0.*beta=1\.5"):
        call(key, state)
    # The kernel of the state's own beta steps it, and keeps its beta.
    stepped, _ = jax.jit(at_0.step if how in ("plain", "jit") else jax.vmap(at_0.step))(key, state)
    assert stepped.beta == 0.0


# --- parameters are arguments of the compiled step --------------------------------------

def _mlp(hidden, seed, space=BINARY):
    return MLP(space.shape, space.num_categories, hidden, activation="tanh", rngs=nnx.Rngs(seed))


def _keys_and_states(algo, space=BINARY, num=16):
    x0 = space.random_inputs(jax.random.key(3), num)
    return jax.random.split(jax.random.key(4), num), jax.jit(jax.vmap(algo.init))(x0)


def _assert_same(a, b):
    jax.tree.map(lambda u, v: np.testing.assert_array_equal(np.asarray(u), np.asarray(v)), a, b)


def test_params_as_argument_match_the_bound_params():
    algo = oj.mcmc.gwg(_mlp(16, 0), BINARY, beta=0.8)
    keys, state = _keys_and_states(algo)
    passed = jax.jit(jax.vmap(algo.step, in_axes=(0, 0, None)))(keys, state, algo.params)
    bound = jax.jit(jax.vmap(algo.step))(keys, state)
    _assert_same(passed, bound)  # same program but for where the weights come from: bit for bit


class CountingMLP(MLP):
    """omnijax's MLP that counts how often it is traced."""

    traces = 0

    def __call__(self, onehot):
        CountingMLP.traces += 1
        return super().__call__(onehot)


def _counting_apply():
    count = {"traces": 0}

    def apply(params, onehot):
        count["traces"] += 1
        h = jnp.tanh(onehot.reshape(-1) @ params["w1"] + params["b1"])
        return h @ params["w2"]

    return apply, count


def _apply_params(seed, hidden=16, space=BINARY):
    k1, k2, k3 = jax.random.split(jax.random.key(seed), 3)
    fan_in = space.num_positions * space.num_categories
    return {"w1": jax.random.normal(k1, (fan_in, hidden)) / 3, "b1": jax.random.normal(k2, (hidden,)) * 0.1,
            "w2": jax.random.normal(k3, (hidden,))}


@pytest.mark.parametrize("form", ["apply_params", "nnx"])
def test_two_parameter_sets_share_one_compilation(form):
    """One compiled step, called with the params of two models of the same architecture:
    traced once, and each call gives exactly what that model's own bound step gives."""
    if form == "apply_params":
        apply, count = _counting_apply()
        first = oj.mcmc.gwg(apply, BINARY, beta=0.8, params=_apply_params(0))
        second = oj.mcmc.gwg(apply, BINARY, beta=0.8, params=_apply_params(1))
        traces = lambda: count["traces"]
    else:
        first = oj.mcmc.gwg(CountingMLP(BINARY.shape, 2, 16, activation="tanh", rngs=nnx.Rngs(0)), BINARY, beta=0.8)
        second = oj.mcmc.gwg(CountingMLP(BINARY.shape, 2, 16, activation="tanh", rngs=nnx.Rngs(1)), BINARY, beta=0.8)
        traces = lambda: CountingMLP.traces
    keys, state = _keys_and_states(first)
    step = jax.jit(jax.vmap(first.step, in_axes=(0, 0, None)))
    before = traces()
    out_first = step(keys, state, first.params)
    jax.block_until_ready(out_first)
    traced_once = traces()
    assert traced_once > before
    out_second = step(keys, state, second.params)
    jax.block_until_ready(out_second)
    assert traces() == traced_once, "the second parameter set retraced the step"
    _assert_same(out_first, jax.jit(jax.vmap(first.step))(keys, state))
    _assert_same(out_second, jax.jit(jax.vmap(second.step))(keys, state))
    # Other weights give another chain: the second call did use the second parameters.
    assert not np.array_equal(np.asarray(out_first[0].z), np.asarray(out_second[0].z))


@pytest.mark.parametrize("kernel", ["gwg", "replica_exchange"])
def test_compiled_step_does_not_hold_the_weights(kernel):
    """The lowered program of the params-as-argument step does not grow with the hidden width
    (the weights are not constants in it); the bound-params step of the same model does
    (the control that shows the measurement sees constants)."""
    sizes = {}
    for hidden in (8, 1024):
        model = _mlp(hidden, 0)
        if kernel == "gwg":
            algo = oj.mcmc.gwg(model, BINARY, beta=0.8)
            keys, state = _keys_and_states(algo)
        else:
            algo = oj.mcmc.replica_exchange(model, BINARY, [-0.5, 0.0, 0.5])
            state = jax.jit(jax.vmap(algo.init))(BINARY.random_inputs(jax.random.key(3), 12).reshape(4, 3, 12))
            keys = jax.random.split(jax.random.key(4), 4)
        passed = jax.jit(jax.vmap(algo.step, in_axes=(0, 0, None))).lower(keys, state, algo.params).as_text()
        bound = jax.jit(jax.vmap(algo.step)).lower(keys, state).as_text()
        sizes[hidden] = (len(passed), len(bound))
    print(f"\n{kernel}: lowered text length (params passed, params bound) by hidden width: {sizes}")
    weights_1024 = 4 * (BINARY.num_positions * 2 * 1024 + 2 * 1024)  # bytes of float32 weights
    assert abs(sizes[1024][0] - sizes[8][0]) < 1_000
    assert sizes[1024][1] - sizes[8][1] > weights_1024  # constants: at least 2 hex digits a byte


# --- bad input ----------------------------------------------------------------------------

def test_wrong_input_shape_to_init_is_refused(binary_model):
    algo = oj.mcmc.gwg(binary_model, BINARY)
    with pytest.raises(ValueError, match=r"x must be one input of shape \(12,\)"):
        algo.init(jnp.zeros((5,), jnp.int32))
    with pytest.raises(ValueError, match=r"x must be one input of shape \(12,\)"):
        jax.vmap(algo.init)(jnp.zeros((4, 3, 4), jnp.int32))
    with pytest.raises(ValueError, match="x must hold integer categories"):
        algo.init(jnp.zeros((12,), jnp.float32))
    rx = oj.mcmc.replica_exchange(binary_model, BINARY, [-1.0, 0.0, 1.0])
    with pytest.raises(ValueError, match="x must hold one input per rung"):
        rx.init(jnp.zeros((2, 12), jnp.int32))
    with pytest.raises(ValueError, match="x must hold one input per rung"):
        rx.init(jnp.zeros((3, 11), jnp.int32))
    wl = oj.mcmc.wang_landau(binary_model, BINARY, np.linspace(-3, 3, 7))
    with pytest.raises(ValueError, match=r"x must be one input of shape \(12,\)"):
        wl.init(jnp.zeros((4, 11), jnp.int32))


def test_a_proposal_that_is_not_a_proposal_is_refused(binary_model):
    for bad in ("gwg", gwg_proposal, None):
        with pytest.raises(ValueError, match="proposal must be an omnijax Proposal"):
            oj.mcmc.mh(binary_model, BINARY, bad)
    oj.mcmc.mh(binary_model, BINARY, gwg_proposal(BINARY))  # the real thing is accepted
    with pytest.raises(ValueError, match="proposal"):
        oj.mcmc.replica_exchange(binary_model, BINARY, [0.0, 1.0], proposal="no-such-proposal")


@pytest.mark.parametrize("kernel", ["gwg", "dlp", "uniform"])
def test_traced_or_nonfinite_beta_is_refused(binary_model, kernel):
    make = getattr(oj.mcmc, kernel)
    x = jnp.zeros((12,), jnp.int32)
    with pytest.raises(ValueError, match="beta must be a concrete number"):
        jax.jit(lambda b: make(binary_model, BINARY, beta=b).init(x).z)(1.0)
    for bad in (float("nan"), float("inf"), -float("inf")):
        with pytest.raises(ValueError, match="beta must be finite"):
            make(binary_model, BINARY, beta=bad)
    with pytest.raises(ValueError, match="beta must be a real number"):
        make(binary_model, BINARY, beta="hot")


def test_bad_ladders_are_refused(binary_model):
    for betas, why in [([0.0, 1.0, 0.5], "strictly increasing"), ([1.0, 0.0], "strictly increasing"),
                       ([0.0, 0.0, 1.0], "strictly increasing"), ([-1.0, float("nan"), 1.0], "finite"),
                       ([0.0, float("inf")], "finite"), ([1.0], "at least 2"), ([[0.0, 1.0]], "1-D")]:
        with pytest.raises(ValueError, match=f"betas must .*{why}"):
            oj.mcmc.replica_exchange(binary_model, BINARY, betas)


def test_other_bad_arguments_name_themselves(binary_model):
    with pytest.raises(ValueError, match="space must be an omnijax.InputSpace"):
        oj.mcmc.gwg(binary_model, (12,))
    with pytest.raises(ValueError, match="model"):
        oj.mcmc.gwg(lambda onehot: onehot.sum(axis=-1), BINARY)  # not a scalar
    with pytest.raises(ValueError, match="sweeps_per_swap"):
        oj.mcmc.replica_exchange(binary_model, BINARY, [0.0, 1.0], sweeps_per_swap=0)
    with pytest.raises(ValueError, match="state must be an MHState"):
        algo = oj.mcmc.gwg(binary_model, BINARY)
        algo.step(jax.random.key(0), (jnp.zeros(12, jnp.int32),))
