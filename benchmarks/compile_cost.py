"""Model weights baked into every executable: compile cost of weights as HLO constants vs arguments.

    python -m benchmarks.compile_cost                          # every configuration below
    python -m benchmarks.compile_cost --models=mnist_mlp,toy_gpt2_L6 --programs=value_and_grad
    python -m benchmarks.compile_cost --models=gpt2_small_L8 --timeout_s=300

A model reaches omnijax in one of two ways (see omnijax.sampling.targets): as a plain function
of one one-hot input, whose closed-over weight arrays JAX folds into the compiled program as
HLO CONSTANTS, or with its parameters as ARGUMENTS of the compiled program (an NNX module, or
apply(params, onehot) with params=; `algo.params` passed to `algo.step`). For each model and
program this script measures both, every configuration in a FRESH subprocess (so compile time
and peak memory are those of that one compilation, with JAX's persistent compilation cache
off: JAX_COMPILATION_CACHE_DIR removed from the environment, jax_enable_compilation_cache
False):

  programs  value_and_grad  jit(jax.value_and_grad(z)) at one one-hot input (what every MH
                            step evaluates)
            gwg_block       one jitted block of `--steps_per_block` steps of the public GWG
                            kernel, `jax.vmap(algo.step, in_axes=(0, 0, None))` over `--chains`
                            chains in a lax.scan (constants: algo.step(key, state) of a kernel
                            built on the plain function; arguments: algo.step(key, state, params))
  models    mnist_mlp       omnijax.models.mlp.MLP, 28x28 binary one-hot (1568) -> 128 relu -> 1
            toy_gpt2_L6/L8  omnijax.models.gpt2.GPT2 of the toy (experiments/workflows/toy.py
                            model_config: 6 layers, 4 heads, width 64, vocabulary 10 digits + BOS,
                            context L), output sequence_nll_fn over the L-digit space (digits
                            padded to tokens, as the toy does)
            gpt2_small_L8/L25  a random GPT-2-small-sized GPT2 (12 layers, 12 heads, 768 wide,
                            vocabulary 50257, context L), sequence_nll_fn, value_and_grad only

Each configuration prints one JSON object per line:
  lower_s, compile_s (+ _cpu_s)  jit(...).lower(*args) and .compile(), wall and process CPU time
  peak_rss_delta_mb       resource.getrusage(RUSAGE_SELF).ru_maxrss after lower+compile minus
                          the same before (after building the model, its inputs and one
                          unrelated warm-up compile); what this compile added to the peak
  rss_retained_mb         resident set after compile minus before (/proc/self/statm)
  stablehlo_text_mb       len(lowered.as_text()): constants print in full there
  hlo_text_mb             len(compiled.as_text()), the optimised HLO (large constants elided)
  hlo_constant_mb, hlo_large_constants  bytes and count of constants of >= 1 KiB in the
                          optimised HLO (shapes parsed from its text)
  executable_mb           size of the serialised executable (jax.experimental.serialize_executable):
                          what a persistent cache entry holds; the constants live in it
  memory_analysis         compiled.memory_analysis() fields (argument/output/temp/generated code)
  parameter_mb            size of the model's parameters
A configuration that runs past --timeout_s or fails prints a line with "error".
"""

from __future__ import annotations

import json
import os
import re
import resource
import subprocess
import sys
import time

from absl import app, flags

FLAGS = flags.FLAGS
MODEL_NAMES = ["mnist_mlp", "toy_gpt2_L6", "toy_gpt2_L8", "gpt2_small_L8", "gpt2_small_L25"]
flags.DEFINE_list("models", MODEL_NAMES, f"Models: {', '.join(MODEL_NAMES)}.")
flags.DEFINE_list("programs", ["value_and_grad", "gwg_block"], "Programs: value_and_grad, gwg_block.")
flags.DEFINE_list("weights", ["constants", "arguments"], "Weights as HLO constants and/or as arguments.")
flags.DEFINE_integer("chains", 64, "gwg_block: chains (vmapped).")
flags.DEFINE_integer("steps_per_block", 10, "gwg_block: steps per chain in the scanned block.")
flags.DEFINE_integer("timeout_s", 600, "Per-configuration subprocess time limit.")
flags.DEFINE_string("child", None, "Internal: run one configuration 'model:program:weights' in this process.")
flags.DEFINE_integer("seed", 0, "Seed of the random weights and inputs.")

# gpt2_small_*: value_and_grad only (the brief's limit: one VG within a few minutes per config).
BLOCK_MODELS = ("mnist_mlp", "toy_gpt2_L6", "toy_gpt2_L8")
_DTYPE_BYTES = {"f32": 4, "f64": 8, "f16": 2, "bf16": 2, "s32": 4, "u32": 4, "s64": 8, "u64": 8,
                "s8": 1, "u8": 1, "pred": 1, "s16": 2, "u16": 2}
_CONSTANT = re.compile(r"=\s*(\w+)\[([\d,]*)\]\S*\s+constant\(")


def _mb(n: float) -> float:
    return round(n / 2**20, 3)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _maxrss_bytes() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def hlo_constants(hlo_text: str, min_bytes: int = 1024) -> tuple[int, int]:
    """(bytes, count) of the constants of >= min_bytes in an HLO module's text."""
    total = count = 0
    for dtype, dims in _CONSTANT.findall(hlo_text):
        size = _DTYPE_BYTES.get(dtype, 4)
        for d in filter(None, dims.split(",")):
            size *= int(d)
        if size >= min_bytes:
            total += size
            count += 1
    return total, count


def build(model_name: str, seed: int):
    """(space, target) of a model: target an oj.Target whose params are the weights."""
    from flax import nnx

    import omnijax as oj
    from omnijax.data import digit_sum
    from omnijax.models.gpt2 import GPT2, GPT2Config, sequence_nll_fn
    from omnijax.models.mlp import MLP

    if model_name == "mnist_mlp":
        space = oj.InputSpace((28, 28), 2)
        return space, oj.as_target(MLP(space.shape, space.num_categories, 128, rngs=nnx.Rngs(seed)))
    if model_name.startswith("toy_gpt2_L"):
        length = int(model_name.rsplit("L", 1)[1])
        # experiments/workflows/toy.py model_config(length, 6, 4, 64) and digit_output_fn.
        config = GPT2Config(vocab_size=digit_sum.VOCAB_SIZE, n_positions=length, n_embd=64, n_layer=6,
                            n_head=4, bos_token_id=digit_sum.BOS)
        nll = sequence_nll_fn(GPT2(config, rngs=nnx.Rngs(seed)), digit_sum.BOS)
        apply = nll.apply

        def digit_nll(params, onehot_digits):
            return apply(params, digit_sum.digits_to_tokens(onehot_digits))

        return oj.InputSpace((length,), digit_sum.NUM_DIGITS), oj.Target(digit_nll, nll.params)
    if model_name.startswith("gpt2_small_L"):
        length = int(model_name.rsplit("L", 1)[1])
        config = GPT2Config(vocab_size=50257, n_positions=1024, n_embd=768, n_layer=12, n_head=12)
        target = sequence_nll_fn(GPT2(config, rngs=nnx.Rngs(seed)))
        return oj.InputSpace((length,), config.vocab_size), target
    raise ValueError(f"unknown model {model_name!r}; one of {MODEL_NAMES}")


def program(program_name: str, weights: str, space, target, seed: int):
    """(fn, args) whose jit(fn).lower(*args).compile() is measured."""
    import jax

    import omnijax as oj

    params = target.params
    x = space.random_inputs(jax.random.key(seed + 1), FLAGS.chains)
    if weights == "constants":
        def model(onehot):  # a plain function: its closed-over weight arrays become HLO constants
            return target.apply(params, onehot)
    else:
        model = target  # parameters travel as arguments
    if program_name == "value_and_grad":
        onehot = space.one_hot(x[0])
        if weights == "constants":
            return jax.value_and_grad(model), (onehot,)
        return (lambda p, oh: jax.value_and_grad(lambda o: target.apply(p, o))(oh)), (params, onehot)
    if program_name == "gwg_block":
        algo = oj.mcmc.gwg(model, space, beta=1.0)
        # The chain states come from one jitted init with params as arguments either way (not measured).
        state = jax.jit(jax.vmap(algo.init, in_axes=(0, None)))(x, algo.params)
        steps, chains = FLAGS.steps_per_block, FLAGS.chains

        def block(p, state, key):
            def body(s, k):
                s, info = jax.vmap(algo.step, in_axes=(0, 0, None))(jax.random.split(k, chains), s, p)
                return s, info.accepted.sum()

            return jax.lax.scan(body, state, jax.random.split(key, steps))

        key = jax.random.key(seed + 2)
        if weights == "constants":
            return (lambda state, key: block(None, state, key)), (state, key)
        return block, (algo.params, state, key)
    raise ValueError(f"unknown program {program_name!r}")


def child(spec: str) -> dict:
    model_name, program_name, weights = spec.split(":")
    import jax
    import jax.numpy as jnp
    import numpy as np

    jax.config.update("jax_enable_compilation_cache", False)
    record = {"model": model_name, "program": program_name, "weights": weights,
              "jax": jax.__version__, "device": str(jax.devices()[0].device_kind),
              "jax_use_simplified_jaxpr_constants": bool(jax.config.values["jax_use_simplified_jaxpr_constants"]),
              "jax_compilation_cache": bool(jax.config.values["jax_enable_compilation_cache"])}
    start = time.perf_counter()
    space, target = build(model_name, FLAGS.seed)
    fn, args = program(program_name, weights, space, target, FLAGS.seed)
    leaves = jax.tree.leaves(target.params)
    record["parameters"] = int(sum(np.prod(np.shape(a)) for a in leaves))
    record["parameter_mb"] = _mb(sum(np.asarray(a).nbytes for a in leaves))
    if program_name == "gwg_block":
        record.update(chains=FLAGS.chains, steps_per_block=FLAGS.steps_per_block)
    jax.jit(lambda a: jnp.sin(a) @ a).lower(jnp.ones((8, 8))).compile()  # one-time compiler start-up
    record["setup_s"] = round(time.perf_counter() - start, 2)

    base_peak, base_rss = _maxrss_bytes(), _rss_bytes()
    wall0, cpu0 = time.perf_counter(), time.process_time()
    lowered = jax.jit(fn).lower(*args)
    wall1, cpu1 = time.perf_counter(), time.process_time()
    compiled = lowered.compile()
    wall2, cpu2 = time.perf_counter(), time.process_time()
    peak, rss = _maxrss_bytes(), _rss_bytes()
    record.update(lower_s=round(wall1 - wall0, 3), lower_cpu_s=round(cpu1 - cpu0, 3),
                  compile_s=round(wall2 - wall1, 3), compile_cpu_s=round(cpu2 - cpu1, 3),
                  peak_rss_delta_mb=_mb(peak - base_peak), rss_retained_mb=_mb(rss - base_rss),
                  peak_rss_mb=_mb(peak), baseline_peak_rss_mb=_mb(base_peak))

    try:
        stats = compiled.memory_analysis()
        record["memory_analysis"] = {name: int(getattr(stats, name)) for name in (
            "generated_code_size_in_bytes", "argument_size_in_bytes", "output_size_in_bytes",
            "alias_size_in_bytes", "temp_size_in_bytes", "peak_memory_in_bytes")
            if hasattr(stats, name)}
    except Exception as err:  # not every backend provides it
        record["memory_analysis"] = f"unavailable: {type(err).__name__}: {err}"
    hlo = compiled.as_text()
    constant_bytes, constant_count = hlo_constants(hlo)
    record.update(hlo_text_mb=_mb(len(hlo)), hlo_constant_mb=_mb(constant_bytes), hlo_large_constants=constant_count)
    del hlo
    record["stablehlo_text_mb"] = _mb(len(lowered.as_text()))
    try:
        from jax.experimental.serialize_executable import serialize

        record["executable_mb"] = _mb(len(serialize(compiled)[0]))
    except Exception as err:
        record["executable_mb"] = f"unavailable: {type(err).__name__}: {err}"
    return record


def main(argv):
    del argv
    if FLAGS.child:
        print(json.dumps(child(FLAGS.child)), flush=True)
        return 0
    env = {k: v for k, v in os.environ.items() if not k.startswith("JAX_COMPILATION_CACHE")
           and not k.startswith("JAX_PERSISTENT_CACHE")}
    env["JAX_ENABLE_COMPILATION_CACHE"] = "false"
    specs = [f"{m}:{p}:{w}" for m in FLAGS.models for p in FLAGS.programs for w in FLAGS.weights
             if p == "value_and_grad" or m in BLOCK_MODELS]
    for spec in specs:
        print(f"compiling {spec}", file=sys.stderr, flush=True)
        cmd = [sys.executable, "-m", "benchmarks.compile_cost", f"--child={spec}", f"--chains={FLAGS.chains}",
               f"--steps_per_block={FLAGS.steps_per_block}", f"--seed={FLAGS.seed}"]
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        model_name, program_name, weights = spec.split(":")
        try:
            done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=FLAGS.timeout_s)
        except subprocess.TimeoutExpired:
            print(json.dumps({"model": model_name, "program": program_name, "weights": weights,
                              "error": f"timed out after {FLAGS.timeout_s} s"}), flush=True)
            continue
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
        if done.returncode or not lines:
            tail = done.stderr.strip().splitlines()[-3:]
            print(json.dumps({"model": model_name, "program": program_name, "weights": weights,
                              "error": f"exit {done.returncode}: {' | '.join(tail)}"}), flush=True)
            continue
        record = json.loads(lines[-1])
        record["process_wall_s"] = round(time.perf_counter() - start, 2)
        record["process_cpu_s"] = round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 2)
        print(json.dumps(record), flush=True)
    return 0


if __name__ == "__main__":
    app.run(main)
