"""One process of a (possibly multi-process) estimate, saving what it produced:
`python -m tests.multihost_job OUT.npz PROCESS_ID NUM_PROCESSES PORT CHECKPOINT_DIR|- [foreign]`.

With NUM_PROCESSES > 1 it joins the others through `jax.distributed.initialize` on
127.0.0.1:PORT with gloo CPU collectives; its devices come from XLA_FLAGS
(--xla_force_host_platform_device_count). It runs the public call
`oj.estimate_output_distribution` on a tiny model and saves ln rho and the raw records of
its replica-exchange runs (captured on their way out of `run_replica_exchange`), so a test can
compare them bit for bit with a single process on as many devices, and which groups this
process's devices held. With `foreign` it instead starts `run_replica_exchange` with another
run's fingerprint on CHECKPOINT_DIR, which must refuse it (ValueError) before sampling.
"""

import sys

import jax

if __name__ == "__main__":
    out, process_id, num_processes, port, checkpoint_dir = sys.argv[1:6]
    foreign = sys.argv[6:] == ["foreign"]
    num_processes = int(num_processes)
    if num_processes > 1:
        jax.config.update("jax_cpu_collectives_implementation", "gloo")  # fails loudly if absent
        jax.distributed.initialize(f"127.0.0.1:{port}", num_processes, int(process_id),
                                   initialization_timeout=60)

import numpy as np  # noqa: E402

import omnijax as oj  # noqa: E402
from omnijax.sampling import estimate as estimate_module  # noqa: E402
from omnijax.sampling import replica_exchange_run  # noqa: E402
from omnijax.sampling.proposals import make_proposal  # noqa: E402
from omnijax.sampling.targets import as_target, make_value_and_grad  # noqa: E402
from tests.models import random_mlp  # noqa: E402

NUM_GROUPS = 4
BETAS = (-1.0, 0.0, 0.75, 1.5)  # the model's outputs span [-10, 7]: both end bins are reached
SCHEDULE = dict(num_steps=400, steps_per_block=100, burn_in=100, record_every=10)  # 4 blocks


def capture_runs(runs):
    """Keep every TemperingRun the estimate makes (pilot first, main run last)."""
    real = estimate_module.run_replica_exchange

    def spy(*args, **kwargs):
        run = real(*args, **kwargs)
        runs.append(run)
        return run

    estimate_module.run_replica_exchange = spy


def capture_local_groups(found):
    """Record, per placement of a run's groups, which groups this process's devices hold."""
    real = replica_exchange_run.shard_over_groups

    def spy(tree, num_groups):
        placed = real(tree, num_groups)
        x = placed.chains.x
        shards = x.addressable_shards if isinstance(x, jax.Array) else []
        found.append(sorted({i for s in shards for i in range(x.shape[0])[s.index[0]]}))
        return placed

    replica_exchange_run.shard_over_groups = spy


SPACE = oj.InputSpace(shape=(3, 4), num_categories=2)


def model():
    return random_mlp(SPACE, seed=0, hidden=8, scale=2.0)


def start_foreign_run(checkpoint_dir):
    """The lower-level call on a directory that holds another run: raises ValueError."""
    target = as_target(model())
    x0 = SPACE.random_inputs(jax.random.key(1), NUM_GROUPS * len(BETAS)).reshape(NUM_GROUPS, len(BETAS), -1)
    replica_exchange_run.run_replica_exchange(
        jax.random.key(2), x0, np.array(BETAS), target, make_value_and_grad(target, SPACE),
        make_proposal("gwg", SPACE), np.linspace(-4, 4, 9), replica_exchange_run.Schedule(
            num_steps=100, steps_per_block=100, burn_in=0), checkpoint_dir=checkpoint_dir,
        fingerprint={"run": "another"})


def main(out, checkpoint_dir):
    space = SPACE
    runs, local_groups = [], []
    capture_runs(runs)
    capture_local_groups(local_groups)
    est = oj.estimate_output_distribution(
        model(), space, np.linspace(-4, 4, 9),
        key=jax.random.key(5), betas=BETAS, num_groups=NUM_GROUPS,
        pilot_steps=20, num_bootstrap=8, reservoir_size=4, progress=True,
        checkpoint_dir=None if checkpoint_dir == "-" else checkpoint_dir, **SCHEDULE)
    pilot, run = runs[0], runs[-1]
    np.savez(out, processes=jax.process_count(), devices=len(jax.devices()),
             local_groups=np.array(local_groups[-1]),
             log_rho=est.log_rho, log_rho_stderr=est.log_rho_stderr, n_samples=est.n_samples,
             representatives=est.representative_inputs, pilot_z=pilot.z, pilot_slot=pilot.slot,
             z=run.z, slot=run.slot, record_step=run.record_step, x=run.state.chains.x,
             trips=run.state.round_trips, swap_accepts=run.state.swap_accepts, reservoir_x=run.reservoir.x)


if __name__ == "__main__":
    if foreign:
        start_foreign_run(checkpoint_dir)
    else:
        main(out, checkpoint_dir)
