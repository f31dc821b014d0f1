"""Energy-based generative training by persistent contrastive divergence (PCD).

The model output f(x) is the unnormalised log-likelihood, p(x) ∝ exp(f(x)). The gradient of
the mean negative log-likelihood of the data is E_p[∇f] − E_data[∇f]; PCD estimates the
first term with samples from a persistent buffer of Markov chains that our own
Gibbs-with-gradients (GWG) Metropolis–Hastings kernel advances at beta = 1 under the current
parameters (Tieleman, 2008; Grathwohl et al., 2021). As in the GWG paper's EBM training, a
fraction `reinit_prob` of the chains drawn from the buffer restart from uniform noise at each
update, so the buffer keeps exploring instead of collapsing onto a few modes.

The MH kernel caches z and the proposal's form of the gradient (kept) of the model at each
chain's input, and the proposal's summary derived from them. Those belong to the parameters that produced them, so after every
parameter update the cache is stale; each update therefore re-evaluates the drawn chains
under the new parameters before sampling: one extra value_and_grad per chain per update on
top of one per MH step.

With a checkpoint directory, the whole training state (parameters, optimiser state,
persistent buffer and the metrics so far) is saved every few updates; every update draws
from its own key, so a restarted run continues bit-identically to an uninterrupted one.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from omnijax.sampling.mcmc import mh_kernel
from omnijax.util.progress import Progress
from omnijax.sampling.proposals import make_proposal
from omnijax.sampling.spaces import InputSpace
from omnijax.sampling.targets import Target, check_output_fn, make_value_and_grad
from omnijax.training.resume import digest, learning_rate_fingerprint, model_fingerprint, resume, resume_note


class UpdateMetrics(NamedTuple):
    loss: jax.Array        # () the objective minimised (contrastive term + regulariser)
    f_data: jax.Array      # () mean f over the data batch
    f_negative: jax.Array  # () mean f over the negative samples
    acceptance: jax.Array  # () fraction of accepted MH proposals in this update
    nonfinite: jax.Array   # () fraction of proposals where the model gave NaN/inf


def train_ebm_pcd(model: nnx.Module, data, space: InputSpace, *, steps: int, batch_size: int,
                  buffer_size: int, mcmc_steps_per_update: int,
                  learning_rate: float | optax.Schedule, key: jax.Array,
                  reinit_prob: float = 0.05, output_l2: float = 0.0, num_flips: int = 1,
                  log_every: int = 100, progress: bool = True, checkpoint_dir: str | None = None,
                  checkpoint_every: int = 100) -> tuple[nnx.Module, dict[str, np.ndarray]]:
    """Train `model` (ONE one-hot input -> scalar f) as an EBM on `data` by PCD with GWG negatives.

    Each of the `steps` updates draws `batch_size` data inputs (with replacement) and
    `batch_size` chains from a persistent buffer of `buffer_size` chains (started from uniform
    noise), restarts each drawn chain from noise with probability `reinit_prob`, runs
    `mcmc_steps_per_update` GWG MH steps (`num_flips` site moves per proposal) at beta = 1,
    writes the chains back, and takes one Adam step on

        loss = mean f(negatives) − mean f(data) + output_l2 * (mean f(data)² + mean f(negatives)²).

    The optional `output_l2` term (the energy-magnitude regulariser of Du & Mordatch, 2019)
    keeps outputs near zero: p is unchanged by adding a constant to f, so without it f can
    drift freely; a positive value trades a small bias of the fit for stable output scales.
    Only the model's nnx.Param variables are trained; any other state is held fixed.

    Args:
      data: integer categories of shape (N, *space.shape), values in [0, K).
      learning_rate: Adam's step size, a positive float or an optax schedule of the update count.
      key: a jax.random key; the run is a deterministic function of it.
      log_every: updates between progress lines (on stderr, when `progress`).
      checkpoint_dir: if set, the training state is saved there every `checkpoint_every`
        updates and after the last, and a checkpoint of the same run found there is resumed
        from the next update (bit-identical to an uninterrupted run). A checkpoint of another
        run (other settings, data, initial model or key) raises ValueError naming checkpoint_dir.

    Returns:
      (model, stats): the same model with its trained parameters, and numpy arrays
      stats["loss" | "f_data" | "f_negative" | "acceptance" | "nonfinite"] of shape (steps,),
      plus stats["buffer"], the final persistent chains, shape (buffer_size, *space.shape).
    """
    data_flat = _check_data(data, space)
    _check_int("steps", steps, 1)
    _check_int("batch_size", batch_size, 1)
    _check_int("buffer_size", buffer_size, batch_size)
    _check_int("mcmc_steps_per_update", mcmc_steps_per_update, 1)
    _check_int("log_every", log_every, 1)
    _check_int("checkpoint_every", checkpoint_every, 1)
    if not callable(learning_rate) and not learning_rate > 0:
        raise ValueError(f"learning_rate must be positive, got {learning_rate!r}")
    if not 0.0 <= reinit_prob <= 1.0:
        raise ValueError(f"reinit_prob must lie in [0, 1], got {reinit_prob!r}")
    if not output_l2 >= 0.0:
        raise ValueError(f"output_l2 must be >= 0, got {output_l2!r}")
    check_output_fn(model, space, "model")

    graphdef, params, fixed = nnx.split(model, nnx.Param, ...)
    optimizer = optax.adam(learning_rate)
    proposal = make_proposal("gwg", space, num_flips=num_flips)

    def apply(params, onehot):
        return nnx.merge(graphdef, params, fixed)(onehot)

    # The parameters are an argument of every call below (they change at each update).
    value_and_grad = make_value_and_grad(Target(apply), space)

    def outputs(params, x_flat):
        onehot = space.one_hot(x_flat).reshape((-1,) + space.onehot_shape)
        return jax.vmap(lambda o: apply(params, o))(onehot).astype(jnp.float32)

    def sample_negatives(params, x, key):
        """Advance chains x (B, D) by the MH steps under `params`, from freshly evaluated caches."""
        states = jax.vmap(lambda x: mh_kernel.init(x, params, value_and_grad, proposal, 1.0))(x)
        step_one = jax.vmap(lambda k, s: mh_kernel.step(k, s, params, value_and_grad, proposal, 1.0))

        def mh_sweep(states, key):
            states, info = step_one(jax.random.split(key, x.shape[0]), states)
            return states, (info.accepted, info.nonfinite)

        states, (accepted, nonfinite) = jax.lax.scan(
            mh_sweep, states, jax.random.split(key, mcmc_steps_per_update))
        return states.x, jnp.mean(accepted), jnp.mean(nonfinite)

    def loss_fn(params, positives, negatives):
        f_data = outputs(params, positives)
        f_negative = outputs(params, negatives)
        loss = jnp.mean(f_negative) - jnp.mean(f_data)
        loss += output_l2 * (jnp.mean(f_data ** 2) + jnp.mean(f_negative ** 2))
        return loss, (jnp.mean(f_data), jnp.mean(f_negative))

    @jax.jit
    def update(params, opt_state, buffer, data_flat, key):
        """One PCD update: a pure function of (params, opt_state, buffer, data, key)."""
        data_key, pick_key, reinit_key, noise_key, mcmc_key = jax.random.split(key, 5)
        positives = data_flat[jax.random.randint(data_key, (batch_size,), 0, data_flat.shape[0])]
        picked = jax.random.choice(pick_key, buffer.shape[0], (batch_size,), replace=False)
        restart = jax.random.uniform(reinit_key, (batch_size, 1)) < reinit_prob
        noise = space.random_inputs(noise_key, batch_size).reshape(batch_size, -1)
        chains = jnp.where(restart, noise, buffer[picked])
        negatives, acceptance, nonfinite = sample_negatives(params, chains, mcmc_key)
        buffer = buffer.at[picked].set(negatives)
        (loss, (f_data, f_negative)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params, positives, negatives)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        params = optax.apply_updates(params, updates)
        return params, opt_state, buffer, UpdateMetrics(loss, f_data, f_negative, acceptance, nonfinite)

    init_key, chain_key = jax.random.split(key)
    step_keys = jax.random.split(chain_key, steps)
    state = {"params": params, "opt_state": optimizer.init(params),
             "buffer": space.random_inputs(init_key, buffer_size).reshape(buffer_size, -1),
             "history": {name: np.zeros(steps, np.float32) for name in UpdateMetrics._fields}}
    checkpointer, done = None, 0
    if checkpoint_dir is not None:
        fingerprint = {"space": {"shape": space.shape, "num_categories": space.num_categories,
                                 "frozen": digest(space.frozen_mask, space.frozen_values)},
                       "steps": steps, "batch_size": batch_size, "buffer_size": buffer_size,
                       "mcmc_steps_per_update": mcmc_steps_per_update,
                       "learning_rate": learning_rate_fingerprint(learning_rate, steps),
                       "reinit_prob": reinit_prob, "output_l2": output_l2, "num_flips": num_flips,
                       "data_shape": data_flat.shape, "data": digest(data_flat),
                       "model": model_fingerprint(model), "key": digest(key)}
        checkpointer, done, state = resume(checkpoint_dir, fingerprint, state)
    params, opt_state, buffer = state["params"], state["opt_state"], state["buffer"]
    history = {name: np.array(values) for name, values in state["history"].items()}
    unrecorded = []  # metrics (device scalars) of updates not yet copied into `history`
    data_device = jnp.asarray(data_flat)
    bar = Progress("ebm-pcd", steps, "updates", enabled=progress, min_interval=0.0)
    if done:
        bar.update(done, f"{resume_note('update', done, steps)} from {checkpoint_dir}")
    try:
        for step in range(done + 1, steps + 1):
            params, opt_state, buffer, metrics = update(params, opt_state, buffer, data_device, step_keys[step - 1])
            unrecorded.append(metrics)
            log_now = progress and (step % log_every == 0 or step == steps)
            save_now = checkpointer is not None and (step % checkpoint_every == 0 or step == steps)
            if log_now or save_now:
                _record(history, unrecorded, step)
            if log_now:
                recent = {name: values[max(0, step - log_every):step] for name, values in history.items()}
                bar.update(step, f"loss {recent['loss'].mean():+.4f} | f data {recent['f_data'].mean():+.3f} "
                                 f"vs negatives {recent['f_negative'].mean():+.3f} | "
                                 f"MH accept {recent['acceptance'].mean():.3f}")
            if save_now:
                checkpointer.save(step, {"params": params, "opt_state": opt_state, "buffer": buffer,
                                         "history": history})
    finally:
        if checkpointer is not None:
            checkpointer.close()
    _record(history, unrecorded, steps)
    nnx.update(model, params)
    return model, {**history, "buffer": np.asarray(buffer).reshape((buffer_size,) + space.shape)}


def _record(history: dict[str, np.ndarray], unrecorded: list[UpdateMetrics], step: int) -> None:
    """Copy the metrics of the updates up to `step` still on the device into `history` (one fetch)."""
    fetched = jax.device_get(unrecorded)
    for name in UpdateMetrics._fields:
        history[name][step - len(fetched):step] = [getattr(m, name) for m in fetched]
    unrecorded.clear()


def _check_data(data, space: InputSpace) -> np.ndarray:
    """Validate data (N, *shape) of categories; returns it flat, int32 (N, D)."""
    arr = np.asarray(data)
    if arr.ndim != len(space.shape) + 1 or arr.shape[0] == 0:
        raise ValueError(f"data must have shape (N, *{space.shape}) with N >= 1, got {arr.shape}")
    return space.check_inputs(arr, "data").reshape(arr.shape[0], -1)


def _check_int(name: str, value, minimum: int) -> None:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
