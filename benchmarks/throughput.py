"""Sampler throughput and model-FLOP utilisation (MFU) of omnijax's public MCMC kernels.

    python -m benchmarks.throughput                      # mlp_tanh, mlp_relu x gwg, dlp, uniform
    python -m benchmarks.throughput --prng=threefry2x32,rbg,unsafe_rbg
    python -m benchmarks.throughput --models=mlp_tanh --proposals=gwg --kernels=single
    python -m benchmarks.throughput --weights=arguments,constants   # weights as jit args vs HLO constants

Public API only (`import omnijax as oj`: `oj.mcmc.*`, `oj.InputSpace`, `oj.as_target`,
`oj.linear_ladder`). Prints one JSON object per line (progress goes to stderr). Each line is
one jitted block of `--steps_per_block` MH steps per chain, with the model parameters passed
as an ARGUMENT of the block (`algo.params`, as every omnijax driver does; `--weights=constants`
calls `algo.step` without params instead, so XLA folds the weights into the program):

  kernel="cached"            the single-beta kernel `oj.mcmc.<proposal>(model, space, beta=--beta)`:
                             a lax.scan of `jax.vmap(algo.step, in_axes=(0, 0, None))` over
                             `--groups * --replicas` independent chains
  kernel="naive"             (gwg, with --compare_naive) the SAME public kernel re-initialised from
                             x every step: `algo.step(key, algo.init(x, params), params)`, carrying
                             only x. It recomputes value_and_grad (and the proposal's cached
                             gradient form and summary) at the current state instead of trusting
                             the cache: TWO model evaluations per step instead of one
  kernel="replica_exchange"  `oj.mcmc.replica_exchange(model, space, betas, proposal=...,
                             sweeps_per_swap=--swap_every)` vmapped over `--groups` groups of
                             `--replicas` walkers (linear ladder --beta_min..--beta_max). One of
                             its steps is --swap_every MH sweeps, a swap round and the summary
                             refresh; (z, slot) of every walker is emitted every --record_every
                             sweeps, as the production block does (the production loop's
                             reservoir insert is not public API and is not timed here)

After a warm-up call that compiles, `--repeats` rounds each run one block of EVERY line in turn
(interleaved, so load from other processes hits all lines alike) with block_until_ready;
chain_steps_per_s is the BEST block (chain_steps_per_s_median the median).

  model_flops_per_step      XLA cost analysis of the model evaluation one MH step runs, for ONE
                            one-hot input: jit(jax.value_and_grad(model)), or the forward pass
                            alone for the uniform proposal (it keeps no gradient, so XLA drops
                            the backward pass)
  peak_flops_per_s          best float32 --peak_size^3 jnp matmul, timed before and in every round
  mfu                       model_flops_per_step * chain_steps_per_s / peak_flops_per_s
  chain_steps_per_cpu_s     steps per second of this process's CPU time (all threads): a
                            diagnostic that moves less than wall time when the machine is shared

"speedup" is cached/naive in wall time, "speedup_cpu_time" the same in CPU time (both on the
cached and on the naive line of a pair). The PRNG implementation is chosen per line through
the key (jax.random.key(seed, impl=...)).
"""

from __future__ import annotations

import json
import statistics
import sys
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_list("models", ["mlp_tanh", "mlp_relu"], "Models (see benchmarks/models.py).")
flags.DEFINE_enum("model_impl", "nnx", ["function", "nnx"], "Passed to benchmarks.models (both give the NNX MLP now).")
flags.DEFINE_list("proposals", ["gwg", "dlp", "uniform"], "Proposals: gwg, dlp, uniform.")
flags.DEFINE_list("kernels", ["single", "replica_exchange"],
                  "single: the single-beta kernels (and the naive gwg); replica_exchange: oj.mcmc.replica_exchange.")
flags.DEFINE_list("weights", ["arguments"],
                  "arguments: algo.params passed into the jitted block; constants: algo.step with params=None "
                  "(weights folded into the program as HLO constants).")
flags.DEFINE_list("prng", ["threefry2x32"], "PRNG implementations: threefry2x32, rbg, unsafe_rbg.")
flags.DEFINE_integer("groups", 64, "Independent groups C (chains per replica).")
flags.DEFINE_integer("replicas", 8, "Replicas R per group; chains = C * R.")
flags.DEFINE_integer("steps_per_block", 200, "MH steps per chain in one timed block (one jit call).")
flags.DEFINE_integer("record_every", 10, "replica_exchange: (z, slot) emitted every this many sweeps.")
flags.DEFINE_integer("swap_every", 10, "replica_exchange: sweeps_per_swap (MH sweeps per exchange round).")
flags.DEFINE_integer("repeats", 7, "Timed blocks per line (interleaved across lines); the best is reported.")
flags.DEFINE_boolean("compare_naive", True, "Add a kernel='naive' line (and speedup) for each single-beta gwg line.")
flags.DEFINE_integer("peak_size", 2048, "Matrix size n of the n^3 float32 matmul that measures peak FLOP/s.")
flags.DEFINE_float("beta", 1.0, "Inverse temperature of the single-beta kernels.")
flags.DEFINE_float("beta_min", -1.0, "Lowest inverse temperature of the replica-exchange ladder.")
flags.DEFINE_float("beta_max", 1.0, "Highest inverse temperature of the replica-exchange ladder.")
flags.DEFINE_integer("seed", 0, "Seed.")


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


def model_flops(model, space, x, forward_only: bool) -> float:
    """FLOPs of one model evaluation at one input x (space.shape): value_and_grad with respect
    to the one-hot input, or the forward pass alone. Parameters are arguments."""
    import jax

    import omnijax as oj

    target = oj.as_target(model)
    onehot = space.one_hot(x)
    if forward_only:
        return flops_of(target.apply, target.params, onehot)
    return flops_of(lambda p, oh: jax.value_and_grad(lambda o: target.apply(p, o))(oh), target.params, onehot)


def _single_beta_block(algo, naive: bool, constants: bool, num_chains: int, steps: int):
    """jitted block(params, carry, key) -> (carry, accepted moves): `steps` steps of every chain.

    cached: carry is the kernel's state (vmapped MHState). naive: carry is x alone and every
    step starts from algo.init(x), so the cached z, gradient form and summary are recomputed.
    """
    import jax
    import jax.numpy as jnp

    def one_step(key, carry, params):
        p = None if constants else params
        if naive:
            state, info = algo.step(key, algo.init(carry, p), p)
            return state.x, info.accepted
        state, info = algo.step(key, carry, p)
        return state, info.accepted

    vstep = jax.vmap(one_step, in_axes=(0, 0, None))

    @jax.jit
    def block(params, carry, key):
        def body(c, k):
            c, accepted = vstep(jax.random.split(k, num_chains), c, params)
            return c, jnp.sum(accepted, dtype=jnp.int32)

        carry, accepted = jax.lax.scan(body, carry, jax.random.split(key, steps))
        return carry, jnp.sum(accepted)

    return block


def _replica_exchange_block(algo, constants: bool, num_groups: int, steps: int):
    """jitted block(params, state, key) -> (state, records): `steps` MH sweeps of every walker
    in exchange rounds of --swap_every sweeps, (z, slot) recorded every --record_every sweeps."""
    import jax

    rounds = FLAGS.record_every // FLAGS.swap_every
    records = steps // FLAGS.record_every
    vstep = jax.vmap(lambda k, s, p: algo.step(k, s, None if constants else p)[0], in_axes=(0, 0, None))

    @jax.jit
    def block(params, state, key):
        def one_record(s, k):
            keys = jax.random.split(k, rounds)
            s = jax.lax.fori_loop(0, rounds, lambda i, s: vstep(jax.random.split(keys[i], num_groups), s, params), s)
            return s, (s.chains.z, s.slot)

        return jax.lax.scan(one_record, state, jax.random.split(key, records))

    return block


class Line:
    """One benchmarked block: a compiled jitted block and its carried state."""

    def __init__(self, model_name, proposal_name, prng, kernel, weights):
        import jax

        import omnijax as oj
        from benchmarks.models import MODELS

        space = oj.InputSpace((28, 28), 2)
        model = MODELS[model_name](space, FLAGS.model_impl)
        num_groups, num_replicas = FLAGS.groups, FLAGS.replicas
        self.num_chains = num_groups * num_replicas
        self.kernel = kernel
        constants = weights == "constants"

        # The PRNG implementation travels with the key: every key below derives from this one.
        key = jax.random.key(FLAGS.seed, impl=prng)
        init_key, self.run_key = jax.random.split(key)
        x0 = space.random_inputs(init_key, self.num_chains)  # (chains, 28, 28)
        self.flops = model_flops(model, space, x0[0], forward_only=proposal_name == "uniform")

        if kernel == "replica_exchange":
            betas = oj.linear_ladder(FLAGS.beta_min, FLAGS.beta_max, num_replicas)
            algo = oj.mcmc.replica_exchange(model, space, betas, proposal=proposal_name,
                                            sweeps_per_swap=FLAGS.swap_every)
            init = jax.jit(jax.vmap(algo.init, in_axes=(0, None)))
            self.carry = init(x0.reshape(num_groups, num_replicas, *space.shape), algo.params)
            self.block = _replica_exchange_block(algo, constants, num_groups, FLAGS.steps_per_block)
        else:
            algo = getattr(oj.mcmc, proposal_name)(model, space, beta=FLAGS.beta)
            if kernel == "naive":
                self.carry = x0.reshape(self.num_chains, -1)
            else:
                self.carry = jax.jit(jax.vmap(algo.init, in_axes=(0, None)))(x0, algo.params)
            self.block = _single_beta_block(algo, kernel == "naive", constants, self.num_chains,
                                            FLAGS.steps_per_block)
        self.params = algo.params
        self.accepted = 0
        self.blocks_done = 0
        self.times = []      # wall-clock seconds per timed block
        self.cpu_times = []  # process CPU seconds per timed block (all threads)
        self.record = {
            "model": model_name,
            "proposal": proposal_name,
            "prng": prng,
            "kernel": kernel,
            "weights": weights,
            "value_and_grads_per_step": 2 if kernel == "naive" else 1,
            "chains": self.num_chains,
            "groups": num_groups,
            "replicas": num_replicas,
            "steps_per_block": FLAGS.steps_per_block,
        }
        if kernel == "replica_exchange":
            self.record.update(sweeps_per_swap=FLAGS.swap_every, record_every=FLAGS.record_every)
        else:
            self.record["beta"] = FLAGS.beta
        start = time.perf_counter()
        self.run_block()  # traces, compiles and runs once
        self.record["compile_s"] = round(time.perf_counter() - start, 2)
        self.accepted = 0
        self.steps_counted = 0

    def run_block(self):
        import jax

        key = jax.random.fold_in(self.run_key, self.blocks_done)
        carry, out = self.block(self.params, self.carry, key)
        jax.block_until_ready((carry, out))
        self.carry = carry
        if self.kernel != "replica_exchange":
            self.accepted += int(out)
        self.blocks_done += 1

    def timed_block(self):
        cpu_start = time.process_time()
        self.times.append(_time(self.run_block, 1)[0])
        self.cpu_times.append(time.process_time() - cpu_start)

    def result(self, peak):
        import numpy as np

        steps = self.num_chains * FLAGS.steps_per_block
        if self.kernel == "replica_exchange":
            state = self.carry
            acceptance = np.asarray(state.mh_accepts).sum() / max(np.asarray(state.mh_attempts).sum(), 1)
            swaps = np.asarray(state.swap_accepts).sum() / max(np.asarray(state.swap_attempts).sum(), 1)
            extra = {"swap_acceptance_mean": round(float(swaps), 3)}
        else:
            acceptance = self.accepted / (steps * len(self.times))
            extra = {}
        rate = steps / min(self.times)
        return dict(self.record,
                    chain_steps_per_s=rate,
                    chain_steps_per_s_median=steps / statistics.median(self.times),
                    timing=f"best of {len(self.times)} blocks (interleaved with the other lines)",
                    # Diagnostic for shared machines: throughput per second of CPU time used by
                    # this process (all its threads), less sensitive to other processes' load.
                    chain_steps_per_cpu_s=steps / min(self.cpu_times),
                    chain_steps_per_cpu_s_median=steps / statistics.median(self.cpu_times),
                    model_flops_per_step=self.flops,
                    peak_flops_per_s=peak,
                    mfu=self.flops * rate / peak,
                    mh_acceptance_mean=round(float(acceptance), 3),
                    **extra)


def main(argv):
    del argv
    import jax

    for name in FLAGS.kernels:
        if name not in ("single", "replica_exchange"):
            raise app.UsageError(f"--kernels: single or replica_exchange, got {name!r}")
    for name in FLAGS.weights:
        if name not in ("arguments", "constants"):
            raise app.UsageError(f"--weights: arguments or constants, got {name!r}")
    if FLAGS.record_every % FLAGS.swap_every or FLAGS.steps_per_block % FLAGS.record_every:
        raise app.UsageError("--record_every must be a multiple of --swap_every, --steps_per_block of --record_every")
    lines = []
    for model_name in FLAGS.models:
        for proposal_name in FLAGS.proposals:
            for prng in FLAGS.prng:
                for weights in FLAGS.weights:
                    kernels = []
                    if "single" in FLAGS.kernels:
                        kernels.append("cached")
                        if FLAGS.compare_naive and proposal_name == "gwg":
                            kernels.append("naive")
                    if "replica_exchange" in FLAGS.kernels:
                        kernels.append("replica_exchange")
                    for kernel in kernels:
                        print(f"compiling {model_name} {proposal_name} {prng} {weights} {kernel}",
                              file=sys.stderr, flush=True)
                        lines.append(Line(model_name, proposal_name, prng, kernel, weights))
    # Interleave: one block of every line per round, so that load from other processes on a
    # shared machine hits all lines alike; the peak matmul is timed in every round too.
    peaks = [peak_flops_per_s(FLAGS.peak_size)]
    for round_ in range(FLAGS.repeats):
        print(f"timing round {round_ + 1}/{FLAGS.repeats}", file=sys.stderr, flush=True)
        for line in lines:
            line.timed_block()
        peaks.append(peak_flops_per_s(FLAGS.peak_size, repeats=2))
    peak = max(peaks)
    device = str(jax.devices()[0].device_kind)
    results = [line.result(peak) for line in lines]
    for i, result in enumerate(results):
        if result["kernel"] == "naive":
            cached = results[i - 1]
            assert cached["kernel"] == "cached" and cached["model"] == result["model"]
            cached["speedup"] = result["speedup"] = cached["chain_steps_per_s"] / result["chain_steps_per_s"]
            cached["speedup_cpu_time"] = result["speedup_cpu_time"] = (
                cached["chain_steps_per_cpu_s"] / result["chain_steps_per_cpu_s"])
    for result in results:
        result["device"] = device
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    app.run(main)
