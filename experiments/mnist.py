"""OmniInput on MNIST-shaped binary images: sample a model's output distribution over ALL images.

Until MNIST training lands (issue #3), this runs the engine end to end on the paper's MLP
architecture with randomly initialised weights (no data, no internet needed) and writes
rho.csv, rho.png, representatives.png and samples.npz to --workdir.

    python -m experiments.mnist --model=mlp
"""

from __future__ import annotations

import json
import os
import sys
import time

from absl import app, flags, logging

FLAGS = flags.FLAGS
flags.DEFINE_enum("model", "mlp", ["mlp"], "Model architecture (cnn and resnet arrive with MNIST training).")
flags.DEFINE_string("workdir", None, "Output directory (default runs/mnist-<model>-random).")
flags.DEFINE_integer("image_size", 28, "Images are image_size x image_size binary pixels.")
flags.DEFINE_integer("num_bins", 24, "Number of output bins.")
flags.DEFINE_integer("num_steps", 4_000, "MH steps per walker in the main replica-exchange run.")
flags.DEFINE_integer("seed", 0, "Seed of the weights and of the sampler.")


def main(argv):
    del argv
    logging.set_verbosity(logging.WARNING)  # Orbax logs every checkpoint step at INFO
    import jax
    import numpy as np
    from flax import nnx

    import omnijax as oj
    from omnijax.models.mlp import MLP, as_output_fn
    from omnijax.results import write_run_outputs

    if FLAGS.image_size < 2:
        raise app.UsageError(f"--image_size must be >= 2, got {FLAGS.image_size}")
    workdir = FLAGS.workdir or os.path.join("runs", f"mnist-{FLAGS.model}-random")
    space = oj.InputSpace(shape=(FLAGS.image_size, FLAGS.image_size), num_categories=2)
    model = MLP(space.shape, space.num_categories, rngs=nnx.Rngs(FLAGS.seed))
    output_fn = as_output_fn(model)
    print(f"model: {FLAGS.model} with RANDOM weights (seed {FLAGS.seed}); MNIST training arrives with issue #3",
          file=sys.stderr)
    # Bins: the bulk seen on uniformly random images, widened so the tails are sampled too.
    probe = jax.vmap(output_fn)(space.one_hot(space.random_inputs(jax.random.key(FLAGS.seed), 2048)))
    center, spread = float(np.median(probe)), float(np.std(probe))
    edges = np.linspace(center - 8 * spread, center + 8 * spread, FLAGS.num_bins + 1)
    start = time.perf_counter()
    est = oj.estimate_output_distribution(
        output_fn, space, edges, key=jax.random.key(FLAGS.seed), num_steps=FLAGS.num_steps,
        steps_per_block=min(1_000, FLAGS.num_steps), checkpoint_dir=os.path.abspath(os.path.join(workdir, "checkpoint")))
    seconds = time.perf_counter() - start
    paths = write_run_outputs(workdir, est, title=f"{FLAGS.model} (random weights) on binary images",
                              image_shape=space.shape)
    metrics = {"model": FLAGS.model, "weights": "random", "seconds": round(seconds, 1),
               "betas": est.betas.tolist(), "swap_acceptance": est.diagnostics["swap_acceptance"].tolist(),
               "round_trips": int(est.diagnostics["round_trips"].sum())}
    with open(os.path.join(workdir, "metrics.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    print(f"done in {seconds:.0f} s; wrote " + ", ".join(sorted(paths.values())) + f", {workdir}/metrics.json")


if __name__ == "__main__":
    app.run(main)
