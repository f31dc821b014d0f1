"""Sampler throughput and model-FLOP utilisation (MFU) of the replica-exchange production loop.

    python -m benchmarks.throughput                      # mlp_tanh, mlp_relu x gwg, dlp, uniform
    python -m benchmarks.throughput --prng=threefry2x32,rbg,unsafe_rbg
    python -m benchmarks.throughput --models=mlp_tanh --proposals=gwg --groups=32 --replicas=8

Prints one JSON object per line (progress goes to stderr). Each line times `omnijax.sampling.driver._block_fn`
itself: one jitted block of `--steps_per_block` MH steps of replica exchange (tempering.mh_sweep
every step, tempering.swap every `--swap_every` steps, the reservoir insert every
`--record_every` steps, as after burn-in) over `--groups` x `--replicas` walkers. After a
warm-up call that compiles, `--repeats` rounds each run one block of EVERY line in turn
(interleaved, so load from other processes hits all lines alike) with block_until_ready;
chain_steps_per_s is the BEST block (chain_steps_per_s_median the median).

  model_flops_per_step      XLA cost analysis of the model evaluation one MH step runs, for ONE
                            input: jit(value_and_grad), or the forward pass alone for a proposal
                            that keeps no gradient (uniform: XLA drops the backward pass)
  peak_flops_per_s          best float32 --peak_size^3 jnp matmul, timed before and in every round
  mfu                       model_flops_per_step * chain_steps_per_s / peak_flops_per_s
  chain_steps_per_cpu_s     steps per second of this process's CPU time (all threads): a
                            diagnostic that moves less than wall time when the machine is shared

With --compare_naive (default on) every gwg line gets a partner with kernel="naive": the same
loop with the NAIVE MH step defined below, which recomputes value_and_grad at the current state
every step (two per step instead of one); "speedup" is cached/naive in wall time and
"speedup_cpu_time" the same in CPU time. The PRNG implementation is chosen per line through
the key (jax.random.key(seed, impl=...)), equivalent to jax_default_prng_impl for this loop.
"""

from __future__ import annotations

import contextlib
import json
import statistics
import sys
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_list("models", ["mlp_tanh", "mlp_relu"], "Models (see benchmarks/models.py).")
flags.DEFINE_enum("model_impl", "function", ["function", "nnx"], "Plain jnp function or Flax NNX module.")
flags.DEFINE_list("proposals", ["gwg", "dlp", "uniform"], "Proposals: gwg, dlp, uniform.")
flags.DEFINE_list("prng", ["threefry2x32"], "PRNG implementations: threefry2x32, rbg, unsafe_rbg.")
flags.DEFINE_integer("groups", 64, "Independent groups C (chains per replica).")
flags.DEFINE_integer("replicas", 8, "Replicas R per group; walkers = C * R.")
flags.DEFINE_integer("steps_per_block", 200, "MH steps per walker in one timed block (one jit call).")
flags.DEFINE_integer("record_every", 10, "Record (and reservoir insert) every this many steps.")
flags.DEFINE_integer("swap_every", 10, "Swap attempt every this many steps.")
flags.DEFINE_boolean("reservoir", True, "Insert into the per-bin reservoir at every record (as after burn-in).")
flags.DEFINE_integer("num_bins", 64, "Reservoir bins.")
flags.DEFINE_integer("reservoir_capacity", 32, "Reservoir capacity per bin.")
flags.DEFINE_integer("repeats", 7, "Timed blocks per line (interleaved across lines); the best is reported.")
flags.DEFINE_boolean("compare_naive", True, "Add a kernel='naive' line (and speedup) for each gwg line.")
flags.DEFINE_integer("peak_size", 2048, "Matrix size n of the n^3 float32 matmul that measures peak FLOP/s.")
flags.DEFINE_float("beta_min", -1.0, "Lowest inverse temperature of the linear ladder.")
flags.DEFINE_float("beta_max", 1.0, "Highest inverse temperature of the linear ladder.")
flags.DEFINE_integer("seed", 0, "Seed.")


# --------------------------------------------------------------------------------------------
# NAIVE baseline, for the side-by-side comparison ONLY. Not part of omnijax.
# It does not trust the cached (z, kept, proposal summary) of the chain state: every step it
# recomputes value_and_grad, the proposal's kept form of the gradient and the proposal summary
# at the current x, then runs the production MH step from there, so it evaluates the model
# TWICE per step instead of once. Everything else (proposal, accept test, selects) is the
# production code; the state's `kept` and `summary` fields are never read or updated (XLA
# drops the dead selects), as in a kernel that keeps only x and z.
# --------------------------------------------------------------------------------------------
def naive_mh_step(key, state, beta, value_and_grad, proposal):
    from omnijax.sampling.mcmc.mh import ChainState, evaluate, mh_step

    naive_mh_step.traced += 1
    z, kept = evaluate(state.x, value_and_grad, proposal)  # NAIVE: recomputed every step instead of cached
    summary = proposal.summarize(state.x, kept, beta)
    new, info = mh_step(key, ChainState(state.x, z, kept, summary), beta, value_and_grad, proposal)
    return ChainState(new.x, new.z, state.kept, state.summary), info


naive_mh_step.traced = 0


@contextlib.contextmanager
def naive_kernel():
    """While tracing, tempering.mh_sweep (hence run._block_fn) uses `naive_mh_step`, so the
    naive line runs exactly the production loop with only the MH step swapped."""
    from omnijax.sampling.mcmc import tempering

    original = tempering.mh_step
    tempering.mh_step = naive_mh_step
    before = naive_mh_step.traced
    try:
        yield
    finally:
        tempering.mh_step = original
    if naive_mh_step.traced == before:
        raise RuntimeError("the naive MH step was not traced: tempering no longer calls mh_step by name")


def _time(fn, repeats):
    """Per-call seconds of fn() over `repeats` calls (fn blocks until its result is ready)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


def peak_flops_per_s(n: int, repeats: int = 5) -> float:
    """Best FLOP/s of an n x n x n float32 matmul under jit."""
    import jax
    import jax.numpy as jnp

    a = jax.random.normal(jax.random.key(1), (n, n), jnp.float32)
    b = jax.random.normal(jax.random.key(2), (n, n), jnp.float32)
    matmul = jax.jit(jnp.matmul)
    matmul(a, b).block_until_ready()
    return 2 * n**3 / min(_time(lambda: matmul(a, b).block_until_ready(), repeats))


def flops_of(fn, *args) -> float:
    """FLOPs of jit(fn)(*args) from XLA's cost analysis (a dict in this JAX; a list of dicts in old ones)."""
    import jax

    cost = jax.jit(fn).lower(*args).compile().cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0]
    return float(cost["flops"])


def model_evaluation(value_and_grad, proposal, x):
    """What one MH step evaluates of the model: value_and_grad, or the value alone when the
    proposal keeps nothing of the gradient (XLA then drops the backward pass)."""
    import jax

    kept = jax.eval_shape(lambda y: proposal.compress(y, value_and_grad(y)[1]), x)
    return value_and_grad if jax.tree.leaves(kept) else (lambda y: value_and_grad(y)[0])


class Config:
    """One benchmarked loop: a compiled run._block_fn block and its carried state."""

    def __init__(self, model_name, proposal_name, prng, naive=False):
        import jax
        import jax.numpy as jnp
        import numpy as np

        from benchmarks.models import MODELS
        from omnijax.sampling import reservoir as reservoir_lib
        from omnijax.sampling import driver as run_lib
        from omnijax.sampling.mcmc import tempering
        from omnijax.sampling.proposals import make_proposal
        from omnijax.sampling.spaces import InputSpace
        from omnijax.sampling.targets import make_value_and_grad

        space = InputSpace((28, 28), 2)
        output_fn = MODELS[model_name](space, FLAGS.model_impl)
        value_and_grad = make_value_and_grad(output_fn, space)
        proposal = make_proposal(proposal_name, space)
        num_groups, num_replicas = FLAGS.groups, FLAGS.replicas
        self.num_walkers = num_groups * num_replicas
        dim = space.num_positions

        # The PRNG implementation travels with the key: every key below derives from this one.
        key = jax.random.key(FLAGS.seed, impl=prng)
        init_key, self.run_key = jax.random.split(key)
        x0 = space.random_inputs(init_key, self.num_walkers).reshape(num_groups, num_replicas, dim)
        self.flops = flops_of(model_evaluation(value_and_grad, proposal, x0[0, 0]), x0[0, 0])
        self.betas = jnp.asarray(np.linspace(FLAGS.beta_min, FLAGS.beta_max, num_replicas), jnp.float32)
        edges = np.linspace(-10.0, 10.0, FLAGS.num_bins + 1)
        # burn_in decides whether the reservoir insert runs; num_steps only has to exceed it.
        burn_in = 0 if FLAGS.reservoir else 2**30
        schedule = run_lib.Schedule(num_steps=2**31 - 1, steps_per_block=FLAGS.steps_per_block,
                                    record_every=FLAGS.record_every, swap_every=FLAGS.swap_every,
                                    burn_in=burn_in)
        multipliers = jnp.asarray(reservoir_lib.hash_multipliers(dim))
        self.block = run_lib._block_fn(value_and_grad, proposal, schedule, edges, multipliers)
        self.state = tempering.init(x0, value_and_grad, proposal, self.betas)
        self.reservoir = reservoir_lib.empty(FLAGS.num_bins, FLAGS.reservoir_capacity, dim)
        self.blocks_done = 0
        self.times = []      # wall-clock seconds per timed block
        self.cpu_times = []  # process CPU seconds per timed block (all threads)
        self.record = {
            "model": model_name,
            "proposal": proposal_name,
            "prng": prng,
            "kernel": "naive" if naive else "cached",
            "value_and_grads_per_step": 2 if naive else 1,
            "chains": self.num_walkers,
            "groups": num_groups,
            "replicas": num_replicas,
            "steps_per_block": FLAGS.steps_per_block,
            "reservoir": FLAGS.reservoir,
        }
        start = time.perf_counter()
        with naive_kernel() if naive else contextlib.nullcontext():
            self.run_block()  # traces, compiles and runs once
        self.record["compile_s"] = round(time.perf_counter() - start, 2)

    def run_block(self):
        import jax

        key = jax.random.fold_in(self.run_key, self.blocks_done)
        state, reservoir, records = self.block(self.state, self.reservoir, key, self.betas)
        jax.block_until_ready((state, reservoir, records))
        self.state, self.reservoir = state, reservoir
        self.blocks_done += 1

    def timed_block(self):
        cpu_start = time.process_time()
        self.times.append(_time(self.run_block, 1)[0])
        self.cpu_times.append(time.process_time() - cpu_start)

    def result(self, peak):
        import numpy as np

        steps = self.num_walkers * FLAGS.steps_per_block
        mh_rate = np.asarray(self.state.mh_accepts) / np.maximum(np.asarray(self.state.mh_attempts), 1)
        rate = steps / min(self.times)
        return dict(self.record,
                    chain_steps_per_s=rate,
                    chain_steps_per_s_median=steps / statistics.median(self.times),
                    timing=f"best of {len(self.times)} blocks (interleaved with the other lines)",
                    # Diagnostic for shared machines: throughput per second of CPU time used by
                    # this process (all its threads), less sensitive to other processes' load.
                    chain_steps_per_cpu_s=steps / min(self.cpu_times),
                    model_flops_per_step=self.flops,
                    peak_flops_per_s=peak,
                    mfu=self.flops * rate / peak,
                    mh_acceptance_mean=round(float(mh_rate.mean()), 3))


def main(argv):
    del argv
    import jax

    configs = []
    for model_name in FLAGS.models:
        for proposal_name in FLAGS.proposals:
            for prng in FLAGS.prng:
                for naive in (False, True) if FLAGS.compare_naive and proposal_name == "gwg" else (False,):
                    print(f"compiling {model_name} {proposal_name} {prng}{' naive' if naive else ''}",
                          file=sys.stderr, flush=True)
                    configs.append(Config(model_name, proposal_name, prng, naive=naive))
    # Interleave: one block of every line per round, so that load from other processes on a
    # shared machine hits all lines alike; the peak matmul is timed in every round too.
    peaks = [peak_flops_per_s(FLAGS.peak_size)]
    for round_ in range(FLAGS.repeats):
        print(f"timing round {round_ + 1}/{FLAGS.repeats}", file=sys.stderr, flush=True)
        for config in configs:
            config.timed_block()
        peaks.append(peak_flops_per_s(FLAGS.peak_size, repeats=2))
    peak = max(peaks)
    device = str(jax.devices()[0].device_kind)
    results = [config.result(peak) for config in configs]
    for i, result in enumerate(results):
        if result["kernel"] == "naive":
            cached = results[i - 1]
            cached["speedup"] = result["speedup"] = cached["chain_steps_per_s"] / result["chain_steps_per_s"]
            cached["speedup_cpu_time"] = result["speedup_cpu_time"] = (
                cached["chain_steps_per_cpu_s"] / result["chain_steps_per_cpu_s"])
    for result in results:
        result["device"] = device
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    app.run(main)
