"""How much of a cached GWG step is the model: µs per chain-step of the public `oj.mcmc.gwg` step
(512 chains x 200 steps, MLP 784->128->1 tanh, as benchmarks.throughput) against the model's
value_and_grad alone on the same batch (one site flipped per step so XLA cannot hoist it),
interleaved, best of 7, wall and process CPU time. One JSON object per line: "cached", then
"vg_only" (µs wall and CPU per chain-step, MFU, the model's FLOPs per step, the measured peak).

    python -m benchmarks.model_bound
    python -m benchmarks.model_bound --chains=8 --steps=4 --repeats=2   # a tiny run (tests)

The value_and_grad alone bounds what any first-order sampler can reach on this machine: its
chain-steps/s times the model FLOPs over the peak is the highest MFU a zero-cost sampler would get.
"""
import json
import time

import jax
import jax.numpy as jnp
from absl import app, flags

import omnijax as oj
from benchmarks.models import MODELS

FLAGS = flags.FLAGS


def define_flags():
    """The run's size (defined when run, not on import)."""
    flags.DEFINE_integer("chains", 512, "Chains (vmapped).")
    flags.DEFINE_integer("steps", 200, "Steps per chain in one timed block.")
    flags.DEFINE_integer("repeats", 7, "Timed blocks per variant (interleaved); the best is reported.")


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments {argv[1:]}")
    for name in ("chains", "steps", "repeats"):
        if getattr(FLAGS, name) < 1:
            raise app.UsageError(f"--{name} must be >= 1, got {getattr(FLAGS, name)}")
    space = oj.InputSpace((28, 28), 2)
    model = MODELS["mlp_tanh"](space)
    C, S = FLAGS.chains, FLAGS.steps
    algo = oj.mcmc.gwg(model, space, beta=1.0)
    x0 = space.random_inputs(jax.random.key(0), C)
    state = jax.jit(jax.vmap(algo.init, in_axes=(0, None)))(x0, algo.params)
    target = oj.as_target(model)

    @jax.jit
    def cached(params, st, key):
        def body(c, k):
            c, info = jax.vmap(algo.step, in_axes=(0, 0, None))(jax.random.split(k, C), c, params)
            return c, jnp.sum(info.accepted)
        return jax.lax.scan(body, st, jax.random.split(key, S))

    @jax.jit
    def vg_only(params, x, key):
        # one value_and_grad per chain-step; flip one site per step so XLA cannot hoist it
        def body(xc, k):
            site = jax.random.randint(k, (C,), 0, 784)
            xc = xc.at[jnp.arange(C), site].set(1 - xc[jnp.arange(C), site])
            oh = jax.nn.one_hot(xc.reshape(C, 28, 28), 2)
            v, g = jax.vmap(jax.value_and_grad(lambda o: target.apply(params, o)))(oh)
            return xc, jnp.sum(v) + jnp.sum(g[..., 0])
        return jax.lax.scan(body, x, jax.random.split(key, S))

    xf = x0.reshape(C, -1)
    fns = {"cached": lambda k: cached(algo.params, state, k), "vg_only": lambda k: vg_only(target.params, xf, k)}
    for f in fns.values(): jax.block_until_ready(f(jax.random.key(1)))
    best = {n: (1e9, 1e9) for n in fns}
    for r in range(FLAGS.repeats):
        for n, f in fns.items():
            t0, c0 = time.perf_counter(), time.process_time()
            jax.block_until_ready(f(jax.random.key(r)))
            w, c = time.perf_counter() - t0, time.process_time() - c0
            best[n] = (min(best[n][0], w), min(best[n][1], c))
    flops = jax.jit(lambda p, o: jax.value_and_grad(lambda oh: target.apply(p, oh))(o)).lower(
        target.params, jax.nn.one_hot(x0[0], 2)).compile().cost_analysis()["flops"]
    a = jnp.ones((2048, 2048), jnp.float32)
    matmul = jax.jit(lambda m: m @ m)
    jax.block_until_ready(matmul(a))
    peak = 0.0
    for _ in range(5):
        t0 = time.perf_counter()
        jax.block_until_ready(matmul(a))
        peak = max(peak, 2 * 2048 ** 3 / (time.perf_counter() - t0))
    for n, (w, c) in best.items():
        mfu = flops * C * S / w / peak
        print(json.dumps({"variant": n, "us_wall_per_chain_step": 1e6 * w / (C * S),
                          "us_cpu_per_chain_step": 1e6 * c / (C * S), "mfu": mfu, "model_flops_per_step": flops,
                          "peak_flops_per_s": peak, "chains": C, "steps": S}), flush=True)


if __name__ == "__main__":
    define_flags()
    app.run(main)
