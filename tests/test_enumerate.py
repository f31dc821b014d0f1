"""Exact enumeration against brute force in plain numpy over itertools.product.

Model weights are small multiples of 1/4, so every output is exact in float32 and float64
alike and bin counts can be compared exactly, ties on bin edges included. Also: Orbax
checkpoints (resume after an exception or SIGKILL is bit-identical; another run's directory
is refused untouched) and the model's parameters as arguments of the compiled program.
"""

import itertools
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest
from flax import nnx

import omnijax.sampling.enumerate as enum_mod
from omnijax.sampling.checkpoint import RunCheckpointer
from omnijax.sampling.enumerate import enumerate_output_distribution, input_at
from omnijax.sampling.spaces import InputSpace
from omnijax.sampling.targets import check_output_fn
from tests import enumerate_job
from tests.directory_state import completed_checkpoints, directory_listing, kill_after_first_checkpoint
from tests.xla_flags import host_devices_env

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def dyadic(rng, shape, scale=4):
    """Random weights in {-1, -3/4, ..., 1}: exact in float32."""
    return rng.integers(-scale, scale + 1, size=shape) / scale


def all_inputs(space):
    """Every input of `space` in enumeration order, int array (size, *shape)."""
    free = space.free_positions
    rows = []
    for digits in itertools.product(range(space.num_categories), repeat=space.num_free):
        x = space.frozen_values.reshape(-1).copy()
        x[free] = digits
        rows.append(x.reshape(space.shape))
    return np.stack(rows)


def one_hot_np(x, k):
    return (x[..., None] == np.arange(k)).astype(np.float64)


def brute_force(z, edges, stat=None):
    """Reference counts, below, above and per-bin stat sums from all outputs z."""
    counts, _ = np.histogram(z, edges)
    stat_sum = None if stat is None else np.histogram(z, edges, weights=stat)[0]
    return counts, int(np.sum(z < edges[0])), int(np.sum(z > edges[-1])), stat_sum


def assert_matches(result, z, edges, stat=None):
    counts, below, above, stat_sum = brute_force(z, edges, stat)
    np.testing.assert_array_equal(result.counts, counts)
    assert (result.num_below, result.num_above) == (below, above)
    assert result.total == len(z) == result.counts.sum() + below + above
    assert (result.min_output, result.max_output) == (z.min(), z.max())
    with np.errstate(divide="ignore"):
        np.testing.assert_array_equal(result.log_rho, np.log(counts / len(z)))
    if stat is None:
        assert result.statistic_sum is None
    else:
        np.testing.assert_array_equal(result.statistic_sum, stat_sum)


class Mlp:
    """2-layer ReLU MLP on the flattened one-hot input."""

    def __init__(self, space, hidden, seed):
        rng = np.random.default_rng(seed)
        n = space.num_positions * space.num_categories
        self.k = space.num_categories
        self.w1, self.b1 = dyadic(rng, (n, hidden)), dyadic(rng, hidden)
        self.w2, self.b2 = dyadic(rng, hidden), dyadic(rng, ())

    def jax_fn(self, onehot):
        h = jax.nn.relu(onehot.reshape(-1) @ jnp.float32(self.w1) + jnp.float32(self.b1))
        return h @ jnp.float32(self.w2) + jnp.float32(self.b2)

    def numpy(self, x):
        oh = one_hot_np(x, self.k).reshape(len(x), -1)
        return np.maximum(oh @ self.w1 + self.b1, 0) @ self.w2 + self.b2


class Potts:
    """Fields plus pairwise couplings over all positions: z = sum h[p,a] + sum J[p,q,a,b]."""

    def __init__(self, space, seed):
        rng = np.random.default_rng(seed)
        p, k = space.num_positions, space.num_categories
        self.k = k
        self.h = dyadic(rng, (p, k))
        self.j = np.triu(dyadic(rng, (k, k, p, p)), 1).transpose(2, 3, 0, 1)
        self.params = {"h": np.float32(self.h), "j": np.float32(self.j)}

    @staticmethod
    def apply(params, onehot):
        """The model as apply(params, onehot), params as in self.params."""
        oh = onehot.reshape(-1, onehot.shape[-1])
        return jnp.sum(oh * params["h"]) + jnp.einsum("pa,pqab,qb->", oh, params["j"], oh)

    def jax_fn(self, onehot):
        """The model as a plain function: its weights are closed over."""
        return self.apply(self.params, onehot)

    def numpy(self, x):
        oh = one_hot_np(x, self.k).reshape(len(x), -1, self.k)
        return (oh * self.h).sum((1, 2)) + np.einsum("npa,pqab,nqb->n", oh, self.j, oh)


class PottsModule(nnx.Module):
    """The same Potts model as a Flax NNX module."""

    def __init__(self, potts):
        self.h = nnx.Param(jnp.asarray(potts.params["h"]))
        self.j = nnx.Param(jnp.asarray(potts.params["j"]))

    def __call__(self, onehot):
        return Potts.apply({"h": self.h[...], "j": self.j[...]}, onehot)


def ends_equal(x):
    """Statistic: 1.0 where the first and last position agree."""
    return (x.reshape(-1)[0] == x.reshape(-1)[-1]).astype(jnp.float32)


def test_mlp_binary_4x4_matches_brute_force():
    space = InputSpace((4, 4), 2)
    model = Mlp(space, hidden=8, seed=0)
    z = model.numpy(all_inputs(space))
    edges = np.arange(np.quantile(z, 0.1), np.quantile(z, 0.9), 0.25)  # lands on outputs.
    result = enumerate_output_distribution(model.jax_fn, space, edges, progress=False)
    assert_matches(result, z, edges)


def test_random_model_nine_positions_three_categories():
    space = InputSpace((9,), 3)
    model = Potts(space, seed=1)
    z = model.numpy(all_inputs(space))
    edges = np.linspace(z.min() - 1, z.max() + 1, 17)
    result = enumerate_output_distribution(model.jax_fn, space, edges, chunk_size=81,
                                           progress=False)
    assert_matches(result, z, edges)


def test_frozen_positions():
    mask = np.zeros((2, 5), bool)
    mask[0, 0] = mask[0, 3] = mask[1, 4] = True
    values = np.zeros((2, 5), np.int32)
    values[0, 0], values[0, 3], values[1, 4] = 2, 1, 2
    space = InputSpace((2, 5), 3, frozen_mask=mask, frozen_values=values)
    model = Potts(space, seed=2)
    x = all_inputs(space)
    z = model.numpy(x)
    edges = np.arange(np.floor(z.min()) + 1, np.ceil(z.max()) - 1, 0.5)
    result = enumerate_output_distribution(model.jax_fn, space, edges, chunk_size=27,
                                           progress=False)
    assert result.total == 3**7
    assert_matches(result, z, edges)
    for i in (0, 1, 100, 3**7 - 1):
        np.testing.assert_array_equal(input_at(space, i), x[i])


def test_statistic_sums_and_mean():
    space = InputSpace((7,), 3)
    model = Potts(space, seed=3)
    x = all_inputs(space)
    z = model.numpy(x)
    edges = np.linspace(z.min() - 8, z.max(), 30)  # some bins empty.
    for statistic_fn, stat in [(ends_equal, (x[:, 0] == x[:, -1]).astype(float)),
                               (lambda xi: jnp.sum(xi), x.sum(1).astype(float))]:
        result = enumerate_output_distribution(model.jax_fn, space, edges, chunk_size=9,
                                               statistic_fn=statistic_fn, progress=False)
        assert_matches(result, z, edges, stat)
        counts, _, _, stat_sum = brute_force(z, edges, stat)
        mean = result.statistic_mean()
        np.testing.assert_array_equal(np.isnan(mean), counts == 0)
        np.testing.assert_allclose(mean[counts > 0], stat_sum[counts > 0] / counts[counts > 0])


@pytest.mark.parametrize("chunk_size, expected_chunk",
                         [(1, 3), (2, 3), (10, 9), (27, 27), (100, 81), (3**7, 3**7),
                          (10**6, 3**7)])
def test_chunk_and_call_boundaries(monkeypatch, chunk_size, expected_chunk):
    monkeypatch.setattr(enum_mod, "_CALL_INPUTS", 200)  # several calls, the last one padded.
    space = InputSpace((7,), 3)
    model = Potts(space, seed=4)
    x = all_inputs(space)
    z = model.numpy(x)
    edges = np.linspace(np.quantile(z, 0.05), np.quantile(z, 0.95), 12)
    assert enum_mod._make_plan(space, chunk_size, 1).chunk_size == expected_chunk
    result = enumerate_output_distribution(model.jax_fn, space, edges, chunk_size=chunk_size,
                                           statistic_fn=ends_equal, progress=False)
    assert_matches(result, z, edges, (x[:, 0] == x[:, -1]).astype(float))


def test_chunk_bases_beyond_int32():
    space = InputSpace((40,), 2)
    plan = enum_mod._make_plan(space, 2**16, 1)
    first = 2**24 - 3
    bases, valid = enum_mod._chunk_bases(space, plan, first)
    assert valid[:3].all() and not valid[3:].any()
    for j in range(3):
        np.testing.assert_array_equal(bases[j], input_at(space, (first + j) * 2**16))
    assert input_at(space, 2**40 - 1).tolist() == [1] * 40


class Interrupted(Exception):
    pass


def saved_state(directory):
    """(block, totals, meta) of the newest checkpoint in `directory`, read with Orbax directly."""
    manager = ocp.CheckpointManager(os.path.abspath(directory), item_names=("state", "meta"))
    try:
        block = manager.latest_step()
        saved = manager.restore(block, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(), meta=ocp.args.JsonRestore()))
    finally:
        manager.close()
    return block, saved["state"], saved["meta"]


def assert_same_result(a, b):
    """Two results equal bit for bit."""
    for name in ("counts", "log_rho", "bin_edges"):
        assert getattr(a, name).tobytes() == getattr(b, name).tobytes(), name
    assert (a.statistic_sum is None) == (b.statistic_sum is None)
    if a.statistic_sum is not None:
        assert a.statistic_sum.tobytes() == b.statistic_sum.tobytes()
    for name in ("num_below", "num_above", "total"):
        assert getattr(a, name) == getattr(b, name), name
    for name in ("min_output", "max_output"):
        assert np.float64(getattr(a, name)).tobytes() == np.float64(getattr(b, name)).tobytes(), name


def test_resume_from_interrupted_checkpoint(monkeypatch, tmp_path):
    monkeypatch.setattr(enum_mod, "_CALL_INPUTS", 243)  # 3**7 inputs in 9 calls.
    monkeypatch.setattr(enum_mod, "_CHECKPOINT_EVERY", 2)
    space = InputSpace((7,), 3)
    model = Potts(space, seed=5)
    edges = np.linspace(-6, 6, 25)
    kwargs = dict(chunk_size=27, statistic_fn=lambda x: jnp.sin(jnp.sum(x) * 0.3),
                  progress=False)
    expected = enumerate_output_distribution(model.jax_fn, space, edges, **kwargs)

    directory = tmp_path / "run"
    real_save, real_add = RunCheckpointer.save, enum_mod._add_call
    saves, calls = [], []

    def save_then_die(self, block, state):
        real_save(self, block, state)
        saves.append(block)
        if len(saves) == 2:
            raise Interrupted

    monkeypatch.setattr(RunCheckpointer, "save", save_then_die)
    with pytest.raises(Interrupted):
        enumerate_output_distribution(model.jax_fn, space, edges, checkpoint_dir=directory, **kwargs)
    assert saves == [1, 3] and completed_checkpoints(directory) == [1, 3]
    block, state, meta = saved_state(directory)
    assert block == meta["block"] == 3
    assert int(state["next_chunk"]) == 4 * 9  # 4 calls of 9 chunks done.
    assert state["counts"].dtype == np.int64 and int(state["counts"].sum()) == 4 * 9 * 27

    monkeypatch.setattr(RunCheckpointer, "save", real_save)
    monkeypatch.setattr(enum_mod, "_add_call", lambda *a: (calls.append(a[3]), real_add(*a))[1])
    resumed = enumerate_output_distribution(model.jax_fn, space, edges, checkpoint_dir=directory,
                                            **kwargs)
    assert calls == [36, 45, 54, 63, 72]  # the 5 calls left, in order.
    assert_same_result(resumed, expected)
    assert completed_checkpoints(directory) == [7, 8]  # every 2 calls, and the last.

    done = enumerate_output_distribution(model.jax_fn, space, edges, checkpoint_dir=str(directory),
                                         **kwargs)  # finished checkpoint: no work left.
    assert len(calls) == 5
    assert_same_result(done, expected)


def _frozen_space(values_at_3):
    """(7,) x 3 with position 3 frozen at `values_at_3`, or nothing frozen for None."""
    if values_at_3 is None:
        return InputSpace((7,), 3)
    mask = np.arange(7) == 3
    return InputSpace((7,), 3, frozen_mask=mask, frozen_values=np.where(mask, values_at_3, 0))


def _refusal_cases():
    """name -> (first run's arguments, second run's arguments, fingerprint keys that differ)."""
    base = dict(output_fn=Potts(InputSpace((7,), 3), seed=6).jax_fn, space=InputSpace((7,), 3),
                bin_edges=np.linspace(-6, 6, 25), chunk_size=27, statistic_fn=ends_equal)
    potts6, potts7 = Potts(base["space"], seed=6), Potts(base["space"], seed=7)
    apply_form = dict(base, output_fn=Potts.apply, params=potts6.params)
    nnx_form = dict(base, output_fn=PottsModule(potts6))
    return {
        "bin_edges": (base, dict(base, bin_edges=np.linspace(-6, 6, 13)), ["bin_edges"]),
        "chunk_size": (base, dict(base, chunk_size=9), ["chunk_size", "chunks_per_call"]),
        "space_shape": (base, dict(base, space=InputSpace((6,), 3),
                                   output_fn=Potts(InputSpace((6,), 3), seed=6).jax_fn),
                        ["frozen_mask", "frozen_values", "model_parameters", "space_shape"]),
        "statistic": (base, dict(base, statistic_fn=None), ["has_statistic"]),
        # Freezing position 3 at 0 leaves frozen_values (zeros) as they were: only the mask differs.
        "frozen_mask_only": (base, dict(base, space=_frozen_space(0)), ["frozen_mask"]),
        "frozen_values_only": (dict(base, space=_frozen_space(1)), dict(base, space=_frozen_space(2)),
                               ["frozen_values"]),
        "plain_fn_weights": (base, dict(base, output_fn=potts7.jax_fn), ["model_parameters"]),
        "apply_params_weights": (apply_form, dict(apply_form, params=potts7.params),
                                 ["model_parameters"]),
        "nnx_module_weights": (nnx_form, dict(nnx_form, output_fn=PottsModule(potts7)),
                               ["model_parameters"]),
    }


@pytest.mark.parametrize("case", list(_refusal_cases()))
def test_checkpoint_of_another_run_is_refused_untouched(monkeypatch, tmp_path, case):
    monkeypatch.setattr(enum_mod, "_CALL_INPUTS", 243)  # 9 chunks of 27 per call in every space.
    first, second, differing = _refusal_cases()[case]
    directory = tmp_path / "run"
    enumerate_output_distribution(checkpoint_dir=directory, progress=False, **first)
    before = directory_listing(directory)
    assert completed_checkpoints(directory)
    with pytest.raises(ValueError) as info:
        enumerate_output_distribution(checkpoint_dir=directory, progress=False, **second)
    message = str(info.value)
    assert f"checkpoint_dir={str(directory)!r}" in message
    assert f"(differs in: {', '.join(differing)})" in message
    assert directory_listing(directory) == before
    # The same run again resumes from the finished checkpoint and leaves it as it was.
    enumerate_output_distribution(checkpoint_dir=directory, progress=False, **first)
    assert directory_listing(directory) == before


def test_checkpoint_path_is_a_deprecated_alias_of_checkpoint_dir(monkeypatch, tmp_path):
    monkeypatch.setattr(enum_mod, "_CALL_INPUTS", 243)
    space = InputSpace((7,), 3)
    args = dict(output_fn=Potts(space, seed=6).jax_fn, space=space,
                bin_edges=np.linspace(-6, 6, 25), chunk_size=27, progress=False)
    expected = enumerate_output_distribution(**args)
    with pytest.warns(DeprecationWarning, match="checkpoint_dir"):
        via_path = enumerate_output_distribution(checkpoint_path=tmp_path / "run", **args)
    assert completed_checkpoints(tmp_path / "run") == [7, 8]
    assert_same_result(via_path, expected)
    calls = []
    real_add = enum_mod._add_call
    monkeypatch.setattr(enum_mod, "_add_call", lambda *a: (calls.append(1), real_add(*a))[1])
    assert_same_result(enumerate_output_distribution(checkpoint_dir=tmp_path / "run", **args),
                       expected)
    assert calls == []  # the same directory, finished: nothing left to do.

    old = tmp_path / "enumeration.npz"  # a checkpoint of the old format.
    old.write_bytes(b"not a directory")
    with pytest.warns(DeprecationWarning), pytest.raises(ValueError, match="checkpoint_path .*file"):
        enumerate_output_distribution(checkpoint_path=old, **args)
    with pytest.raises(ValueError, match="checkpoint_dir .*file"):
        enumerate_output_distribution(checkpoint_dir=old, **args)
    assert old.read_bytes() == b"not a directory"
    with pytest.raises(ValueError, match="checkpoint_dir only"):
        enumerate_output_distribution(checkpoint_dir=tmp_path / "a", checkpoint_path=tmp_path / "b",
                                      **args)


def test_killed_enumeration_resumes_bit_identical(tmp_path, capfd):
    ckpt = str(tmp_path / "ckpt")
    saved = kill_after_first_checkpoint("tests.enumerate_job", [ckpt], ckpt)
    assert max(saved) < enumerate_job.NUM_CALLS - 1, "killed too late: the job had finished"

    resumed = enumerate_job.run(ckpt, progress=True)
    err = capfd.readouterr().err.splitlines()
    first_line = next(line for line in err if line.startswith("enumerate"))
    done = (max(saved) + 1) * enumerate_job.CALL_INPUTS
    assert f" {done}/{enumerate_job.SPACE.size} inputs" in first_line, first_line
    assert completed_checkpoints(ckpt)[-1] == enumerate_job.NUM_CALLS - 1

    uninterrupted = enumerate_job.run(None)
    assert_same_result(resumed, uninterrupted)


@pytest.mark.parametrize("form", ["apply", "nnx"])
def test_target_parameters_are_arguments_of_the_compiled_call(form):
    """Targets of one model code with other weights share one compiled enumeration program."""
    space = InputSpace((7,), 3)
    edges = np.linspace(-6, 6, 25)
    traces = []  # one entry each time the model is traced (never when a compiled program runs).

    if form == "apply":
        def apply(params, onehot):
            traces.append(1)
            return Potts.apply(params, onehot)

        def model(potts):
            return dict(output_fn=apply, params=potts.params)
    else:
        class Counted(PottsModule):
            def __call__(self, onehot):
                traces.append(1)
                return super().__call__(onehot)

        def model(potts):
            return dict(output_fn=Counted(potts))

    pottses = [Potts(space, seed=s) for s in (20, 21, 20)]
    start = len(traces)
    check_output_fn(space=space, **model(pottses[0]))
    per_check = len(traces) - start  # the shape check every call makes.
    x = all_inputs(space)
    new_traces = []
    for potts in pottses:
        start = len(traces)
        result = enumerate_output_distribution(space=space, bin_edges=edges, chunk_size=27,
                                               progress=False, **model(potts))
        new_traces.append(len(traces) - start)
        assert_matches(result, potts.numpy(x), edges)
    assert new_traces == [per_check + 1, per_check, per_check]
    z20, z21 = pottses[0].numpy(x), pottses[1].numpy(x)
    assert not np.array_equal(np.histogram(z20, edges)[0], np.histogram(z21, edges)[0])


@pytest.mark.parametrize("bad_value", [np.nan, np.inf])
def test_non_finite_output_raises_with_first_index(monkeypatch, bad_value):
    monkeypatch.setattr(enum_mod, "_CALL_INPUTS", 100)
    space = InputSpace((6,), 3)
    model = Potts(space, seed=7)
    targets = [np.array([1, 0, 2, 2, 1, 0]), np.array([2, 2, 2, 2, 2, 2])]
    first_index = int("102210", 3)

    def output_fn(onehot):
        hit = jnp.zeros(())
        for t in targets:
            hit = hit + jnp.prod(jnp.sum(onehot * jax.nn.one_hot(t, 3), -1))
        return model.jax_fn(onehot) + jnp.where(hit > 0.5, bad_value, 0.0)

    with pytest.raises(ValueError, match="output_fn") as info:
        enumerate_output_distribution(output_fn, space, [-1.0, 0.0, 1.0], chunk_size=9,
                                      progress=False)
    message = str(info.value)
    assert f"index {first_index} " in message and "[1, 0, 2, 2, 1, 0]" in message
    assert str(bad_value) in message


SHARDED_SCRIPT = """
import sys, jax, numpy as np
import omnijax.sampling.enumerate as enum_mod
from tests.test_enumerate import sharded_case
assert jax.device_count() == 8, jax.devices()
enum_mod._CALL_INPUTS = 100
r = sharded_case()
np.savez(sys.argv[1], counts=r.counts, below=r.num_below, above=r.num_above,
         stat=r.statistic_sum, lo=r.min_output, hi=r.max_output)
"""


def sharded_case():
    """A frozen-position space with a statistic, run the same way in and out of a subprocess."""
    mask = np.zeros((8,), bool)
    mask[3] = True
    space = InputSpace((8,), 3, frozen_mask=mask, frozen_values=np.full(8, 2))
    model = Potts(space, seed=8)  # apply + params: the parameters are replicated over the mesh.
    return enumerate_output_distribution(Potts.apply, space, np.linspace(-5, 5, 21),
                                         params=model.params, chunk_size=3,
                                         statistic_fn=ends_equal, progress=False)


def test_sharded_over_eight_devices_equals_single_device(tmp_path):
    out = tmp_path / "sharded.npz"
    env = host_devices_env(8, PYTHONPATH=REPO_ROOT)
    proc = subprocess.run([sys.executable, "-c", SHARDED_SCRIPT, str(out)], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    sharded = np.load(out)
    single = sharded_case()
    np.testing.assert_array_equal(sharded["counts"], single.counts)
    np.testing.assert_array_equal(sharded["stat"], single.statistic_sum)
    assert (int(sharded["below"]), int(sharded["above"])) == (single.num_below, single.num_above)
    assert (float(sharded["lo"]), float(sharded["hi"])) == (single.min_output, single.max_output)


def test_progress_line_on_stderr(monkeypatch, capsys):
    monkeypatch.setattr(enum_mod, "_CALL_INPUTS", 100)
    space = InputSpace((6,), 3)
    fn = Potts(space, seed=9).jax_fn
    enumerate_output_distribution(fn, space, [-1.0, 1.0], chunk_size=9)
    err = capsys.readouterr().err
    assert f"{3**6}/{3**6} inputs" in err and "inputs/s" in err and "ETA" in err
    enumerate_output_distribution(fn, space, [-1.0, 1.0], chunk_size=9, progress=False)
    assert capsys.readouterr().err == ""


def _sum_fn(onehot):
    return jnp.sum(onehot[..., 1])


@pytest.mark.parametrize("kwargs, name", [
    (dict(bin_edges=[1.0]), "bin_edges"),
    (dict(bin_edges=[0.0, 0.0, 1.0]), "bin_edges"),
    (dict(bin_edges=[0.0, np.nan]), "bin_edges"),
    (dict(output_fn="not a function"), "output_fn"),
    (dict(output_fn=lambda oh: oh.sum(-1)), "output_fn"),
    (dict(statistic_fn=3), "statistic_fn"),
    (dict(statistic_fn=lambda x: x * 1.0), "statistic_fn"),
    (dict(chunk_size=0), "chunk_size"),
    (dict(chunk_size=-8), "chunk_size"),
    (dict(chunk_size=2.5), "chunk_size"),
    (dict(chunk_size=True), "chunk_size"),
    (dict(space=InputSpace((41,), 2)), "space is too large to enumerate"),
    (dict(space=(4, 2)), "space"),
])
def test_value_errors_name_the_argument(kwargs, name):
    args = dict(output_fn=_sum_fn, space=InputSpace((4,), 2), bin_edges=[0.0, 2.0, 4.0])
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        enumerate_output_distribution(progress=False, **args)


def test_statistic_mean_without_statistic_raises():
    result = enumerate_output_distribution(_sum_fn, InputSpace((4,), 2), [0.0, 2.0, 4.0],
                                           progress=False)
    with pytest.raises(ValueError, match="statistic_fn"):
        result.statistic_mean()
