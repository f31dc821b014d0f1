"""Token-space proposals against the one-hot path on GPT-2-shaped language models (issue #13 item 7).

    python -m benchmarks.tokens                                  # both models, gwg and dlp, both paths
    python -m benchmarks.tokens --models=gpt2-2x128-v50257-L25 --proposals=gwg --repeats=5
    python -m benchmarks.tokens --models=gpt2-1x16-v101-L6 --chains=2 --steps=2 --repeats=1   # a tiny check

Models (random weights, `omnijax.models.gpt2.GPT2`; z = the mean next-token NLL with BOS first):
`gpt2-small-L<L>` (12 layers, width 768, 12 heads, V = 50,257) and `gpt2-<layers>x<width>-v<V>-L<L>`
(heads = width / 64, at least 1). Paths: `onehot` is today's path, `sequence_nll_fn(model)` on
the one-hot input with `oj.mcmc.gwg`/`dlp` (a (L, V) gain table per chain); `embedding` is
`gpt2_sequence_nll_target(model)` with `oj.mcmc.token_gwg`/`token_dlp` (gather, dz/de (L, d) per
chain, the (L, V) table formed transiently). Prints one JSON object per line:

  chain_steps_per_s       chains * steps / wall seconds of the best timed block (a jitted
                          lax.scan of `--steps` MH steps of `--chains` chains, params as arguments)
  cpu_chain_steps_per_s   the same per second of this process's CPU time (all threads): less
                          sensitive to other processes on a shared machine
  flops_per_step          XLA cost analysis of one MH step of one chain (jit(algo.step)): the
                          proposal, one value_and_grad at x' and the scoring of the way back
  lower_bound_flops_per_step  gather forward + backward to the embeddings (XLA cost analysis of
                          the token target's value_and_grad) + one (L, d) x (d, V) product (2 L d V)
  state_bytes_per_chain   bytes of one chain's MH state (x, z, kept gradient form, summary)

Lines are timed interleaved (one block of every line per round, `--repeats` rounds) so that load
from other processes hits both paths alike; embedding lines add `speedup` and `speedup_cpu_time`
(embedding / onehot throughput of the same model and proposal) and `flops_vs_lower_bound`.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
import time

from absl import app, flags

FLAGS = flags.FLAGS
flags.DEFINE_list("models", ["gpt2-2x128-v50257-L25", "gpt2-small-L25"], "Model names (see the docstring).")
flags.DEFINE_list("proposals", ["gwg", "dlp"], "gwg, gwg3 (three moves per proposal) or dlp.")
flags.DEFINE_list("paths", ["onehot", "embedding"], "onehot and/or embedding.")
flags.DEFINE_integer("chains", 2, "Chains per timed block (vmapped).")
flags.DEFINE_integer("steps", 2, "MH steps per chain in one timed block.")
flags.DEFINE_integer("repeats", 3, "Timed blocks per line (interleaved); the best is reported.")
flags.DEFINE_float("beta", -1.0, "Inverse temperature (negative: towards low NLL).")
flags.DEFINE_integer("seed", 0, "Seed.")

_NAME = re.compile(r"^gpt2-(?:(?P<small>small)|(?P<layers>\d+)x(?P<width>\d+)-v(?P<vocab>\d+))-L(?P<length>\d+)$")


def model_config(name: str):
    """(GPT2Config, sequence length) of a model name; ValueError naming the forms otherwise."""
    from omnijax.models.gpt2 import GPT2Config

    match = _NAME.match(name)
    if match is None:
        raise ValueError(f"model {name!r}: expected gpt2-small-L<L> or gpt2-<layers>x<width>-v<V>-L<L>")
    length = int(match["length"])
    if match["small"]:
        return GPT2Config(n_positions=max(length, 1024)), length
    width = int(match["width"])
    return GPT2Config(vocab_size=int(match["vocab"]), n_positions=length, n_embd=width, n_layer=int(match["layers"]),
                      n_head=max(1, width // 64), bos_token_id=int(match["vocab"]) - 1), length


def flops_of(fn, *args) -> float:
    """FLOPs of jit(fn)(*args) from XLA's cost analysis."""
    import jax

    cost = jax.jit(fn).lower(*args).compile().cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0]
    return float(cost["flops"])


def _algorithm(path: str, proposal: str, model, space, beta: float):
    import omnijax as oj
    from omnijax.models.gpt2 import sequence_nll_fn
    from omnijax.sampling.token_target import gpt2_sequence_nll_target

    options = {"num_flips": 3} if proposal == "gwg3" else {}
    kind = "dlp" if proposal == "dlp" else "gwg"
    if path == "onehot":
        return getattr(oj.mcmc, kind)(sequence_nll_fn(model), space, beta=beta, **options)
    return getattr(oj.mcmc, f"token_{kind}")(gpt2_sequence_nll_target(model), space, beta=beta, **options)


class Line:
    """One benchmarked (model, proposal, path): a compiled block and its carried chains."""

    def __init__(self, name: str, model, space, proposal: str, path: str, lower_bound: float):
        import jax
        import numpy as np

        self.algo = _algorithm(path, proposal, model, space, FLAGS.beta)
        key = jax.random.key(FLAGS.seed)
        init_key, self.run_key = jax.random.split(key)
        x0 = space.random_inputs(init_key, FLAGS.chains)
        params = self.algo.params
        self.state = jax.jit(jax.vmap(self.algo.init, in_axes=(0, None)))(x0, params)
        one = jax.tree.map(lambda a: a[0], self.state)
        flops = flops_of(self.algo.step, jax.random.key(1), one, params)
        vstep = jax.vmap(self.algo.step, in_axes=(0, 0, None))
        chains, steps = FLAGS.chains, FLAGS.steps

        @jax.jit
        def block(params, state, key):
            def body(s, k):
                s, info = vstep(jax.random.split(k, chains), s, params)
                return s, jnp_sum(info.accepted)
            return jax.lax.scan(body, state, jax.random.split(key, steps))

        self.block = block
        self.blocks_done = 0
        self.accepted = 0
        start = time.perf_counter()
        self.run_block()  # compiles
        compile_s = time.perf_counter() - start
        self.accepted = 0
        self.times, self.cpu_times = [], []
        state_bytes = sum(np.asarray(a).nbytes for a in jax.tree.leaves(self.state)) / chains
        self.record = {"model": name, "proposal": proposal, "path": path, "chains": chains, "steps": steps,
                       "beta": FLAGS.beta, "flops_per_step": flops, "lower_bound_flops_per_step": lower_bound,
                       "flops_vs_lower_bound": flops / lower_bound, "state_bytes_per_chain": int(state_bytes),
                       "compile_s": round(compile_s, 1)}

    def run_block(self):
        import jax

        key = jax.random.fold_in(self.run_key, self.blocks_done)
        state, accepted = self.block(self.algo.params, self.state, key)
        jax.block_until_ready((state, accepted))
        self.state = state
        self.accepted += int(accepted.sum())
        self.blocks_done += 1

    def timed_block(self):
        wall, cpu = time.perf_counter(), time.process_time()
        self.run_block()
        self.times.append(time.perf_counter() - wall)
        self.cpu_times.append(time.process_time() - cpu)

    def result(self) -> dict:
        steps = FLAGS.chains * FLAGS.steps
        return dict(self.record,
                    chain_steps_per_s=steps / min(self.times),
                    cpu_chain_steps_per_s=steps / min(self.cpu_times),
                    chain_steps_per_s_median=steps / statistics.median(self.times),
                    cpu_chain_steps_per_s_median=steps / statistics.median(self.cpu_times),
                    mh_acceptance=round(self.accepted / (steps * len(self.times)), 3),
                    timing=f"best of {len(self.times)} blocks, interleaved with the other lines")


def jnp_sum(a):
    import jax.numpy as jnp

    return jnp.sum(a, dtype=jnp.int32)


def lower_bound_flops(model, space) -> float:
    """Gather forward + backward to the embeddings (XLA cost analysis) + one (L, d) x (d, V) product."""
    import jax.numpy as jnp

    from omnijax.sampling.token_target import gpt2_sequence_nll_target, make_embedding_value_and_grad

    target = gpt2_sequence_nll_target(model)
    vg = make_embedding_value_and_grad(target, space)
    vocab, dim = target.params.embedding.shape
    return flops_of(vg, target.params, jnp.zeros(space.num_positions, jnp.int32)) + 2.0 * space.num_free * dim * vocab


def main(argv):
    del argv
    import jax
    from flax import nnx

    import omnijax as oj
    from omnijax.models.gpt2 import GPT2

    for proposal in FLAGS.proposals:
        if proposal not in ("gwg", "gwg3", "dlp"):
            raise app.UsageError(f"--proposals: gwg, gwg3 or dlp, got {proposal!r}")
    for path in FLAGS.paths:
        if path not in ("onehot", "embedding"):
            raise app.UsageError(f"--paths: onehot or embedding, got {path!r}")
    for name, value in (("chains", FLAGS.chains), ("steps", FLAGS.steps), ("repeats", FLAGS.repeats)):
        if value < 1:
            raise app.UsageError(f"--{name} must be >= 1, got {value}")
    lines = []
    for name in FLAGS.models:
        try:
            config, length = model_config(name)
        except ValueError as err:
            raise app.UsageError(str(err)) from err
        model = GPT2(config, rngs=nnx.Rngs(FLAGS.seed))
        space = oj.InputSpace((length,), config.vocab_size)
        lower_bound = lower_bound_flops(model, space)
        for proposal in FLAGS.proposals:
            for path in FLAGS.paths:
                print(f"compiling {name} {proposal} {path}", file=sys.stderr, flush=True)
                lines.append(Line(name, model, space, proposal, path, lower_bound))
    for round_ in range(FLAGS.repeats):
        print(f"timing round {round_ + 1}/{FLAGS.repeats}", file=sys.stderr, flush=True)
        for line in lines:
            line.timed_block()
    results = [line.result() for line in lines]
    device = str(jax.devices()[0].device_kind)
    for result in results:
        if result["path"] == "embedding":
            base = [r for r in results if r["path"] == "onehot" and r["model"] == result["model"]
                    and r["proposal"] == result["proposal"]]
            if base:
                result["speedup"] = result["chain_steps_per_s"] / base[0]["chain_steps_per_s"]
                result["speedup_cpu_time"] = result["cpu_chain_steps_per_s"] / base[0]["cpu_chain_steps_per_s"]
        result["device"] = device
        print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    app.run(main)
