"""Training a GPT-2 on the digit-sum task until it generates satisfying sequences (paper §3.1).

Training is next-token cross-entropy on fresh batches drawn uniformly from the satisfying
sequences (`digit_sum.sample_satisfying`), in rounds; after each round the model generates
sequences and the fraction that satisfy the constraint is measured. Training stops at the
first round reaching `target_rate`, or after `max_steps`. Every round is checkpointed; all
randomness derives from (key, step), so a resumed run is bit-identical to an uninterrupted one.
"""

from __future__ import annotations

import dataclasses
import functools
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from omnijax.data import digit_sum
from omnijax.models.gpt2 import GPT2
from omnijax.training.resume import digest, model_fingerprint, resume, resume_note


@dataclasses.dataclass(frozen=True)
class LMTraining:
    """How to train: Adam with a linear warm-up, `steps_per_round` updates between generation checks."""

    batch_size: int = 256
    learning_rate: float = 1e-3
    warmup_steps: int = 100
    max_steps: int = 4_000
    steps_per_round: int = 250
    target_rate: float = 0.95
    num_generated: int = 2_000  # sequences generated to measure the rate after each round

    @property
    def max_rounds(self) -> int:
        return -(-self.max_steps // self.steps_per_round)


def _batched_logits(graphdef, params, rest, ids):
    model = nnx.merge(graphdef, params, rest)
    return jax.vmap(model)(ids)


def next_token_loss(graphdef, params, rest, sequences):
    """Mean cross-entropy of predicting each digit of (B, L) sequences from BOS and the digits before it."""
    bos = jnp.full((sequences.shape[0], 1), digit_sum.BOS, sequences.dtype)
    context = jnp.concatenate([bos, sequences[:, :-1]], axis=1)
    logits = _batched_logits(graphdef, params, rest, context)
    return optax.softmax_cross_entropy_with_integer_labels(logits, sequences).mean()


def generate(model: GPT2, key: jax.Array, num: int, length: int, batch_size: int = 4096) -> np.ndarray:
    """`num` digit sequences (num, length) sampled from the model at temperature 1, starting
    from BOS. Only the ten digits can be drawn (BOS is masked out), as the task asks for digits."""
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    out = []
    for start in range(0, num, batch_size):
        count = min(batch_size, num - start)
        out.append(np.asarray(_generate_batch(graphdef, params, rest, jax.random.fold_in(key, start),
                                              count, length)))
    return np.concatenate(out) if out else np.zeros((0, length), np.int32)


@functools.partial(jax.jit, static_argnums=(0, 4, 5))
def _generate_batch(graphdef, params, rest, key, num, length):
    context = jnp.full((num, length), digit_sum.BOS, jnp.int32)  # [BOS, d1, ..., d_{L-1}]
    digits = jnp.zeros((num, length), jnp.int32)

    def step(position, carry):
        context, digits = carry
        # Causal attention: row `position` depends only on context[:position + 1], already filled.
        logits = _batched_logits(graphdef, params, rest, context)[:, position, :digit_sum.NUM_DIGITS]
        digit = jax.random.categorical(jax.random.fold_in(key, position), logits, axis=-1).astype(jnp.int32)
        digits = digits.at[:, position].set(digit)
        context = jnp.where(position + 1 < length, context.at[:, (position + 1) % length].set(digit), context)
        return context, digits

    return jax.lax.fori_loop(0, length, step, (context, digits))[1]


def generation_rate(model: GPT2, key: jax.Array, num: int, length: int, divisor: int) -> float:
    """Fraction of `num` generated sequences whose digit sum is divisible by `divisor`."""
    return float(digit_sum.satisfies(generate(model, key, num, length), divisor).mean())


def train_digit_sum_lm(model: GPT2, *, key: jax.Array, length: int, divisor: int, config: LMTraining = LMTraining(),
                       checkpoint_dir: str | None = None, progress: bool = True) -> tuple[GPT2, list[dict]]:
    """Train `model` in place; returns it and the history, one dict per round
    (step, loss, generation_rate, seconds). See the module docstring for the stopping rule."""
    digit_sum.check_task(length, divisor)
    if model.config.vocab_size != digit_sum.VOCAB_SIZE or model.config.n_positions < length:
        raise ValueError(f"the model must have vocab_size={digit_sum.VOCAB_SIZE} and n_positions >= {length}, "
                         f"got {model.config.vocab_size} and {model.config.n_positions}")
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    schedule = optax.linear_schedule(0.0, config.learning_rate, config.warmup_steps)
    optimizer = optax.adam(schedule)
    data_key, generate_key = jax.random.split(key)

    @jax.jit
    def train_step(params, opt_state, step):
        batch = digit_sum.sample_satisfying(jax.random.fold_in(data_key, step), config.batch_size, length, divisor)
        loss, grads = jax.value_and_grad(next_token_loss, argnums=1)(graphdef, params, rest, batch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    state = {"params": params, "opt_state": optimizer.init(params),
             "history": np.zeros((config.max_rounds, 4), np.float64)}
    checkpointer, done = None, 0
    if checkpoint_dir is not None:
        fingerprint = {"length": length, "divisor": divisor, **dataclasses.asdict(config),
                       "model": model_fingerprint(model), "key": digest(key)}
        checkpointer, done, state = resume(checkpoint_dir, fingerprint, state)
        if progress and done:
            print(f"train toy: {resume_note('round', done, config.max_rounds)} from {checkpoint_dir}",
                  file=sys.stderr, flush=True)
    params, opt_state, history = state["params"], state["opt_state"], np.array(state["history"])
    try:
        round_index = done
        while round_index < config.max_rounds and not (round_index and history[round_index - 1, 2] >= config.target_rate):
            start = time.perf_counter()
            first = round_index * config.steps_per_round
            last = min(first + config.steps_per_round, config.max_steps)
            losses = []
            for step in range(first, last):
                params, opt_state, loss = train_step(params, opt_state, step)
                losses.append(loss)
            nnx.update(model, params)
            rate = generation_rate(model, jax.random.fold_in(generate_key, round_index), config.num_generated,
                                   length, divisor)
            history[round_index] = (last, float(jnp.mean(jnp.stack(losses))), rate, time.perf_counter() - start)
            round_index += 1
            if progress:
                print(f"train toy: step {last}/{config.max_steps} loss {history[round_index - 1, 1]:.4f} "
                      f"generated satisfying {rate:.3f} ({history[round_index - 1, 3]:.1f} s)",
                      file=sys.stderr, flush=True)
            if checkpointer is not None:
                checkpointer.save(round_index, {"params": params, "opt_state": opt_state, "history": history})
    finally:
        if checkpointer is not None:
            checkpointer.close()
    nnx.update(model, params)
    rounds = history[:round_index] if round_index else history[:0]
    return model, [dict(step=int(s), loss=float(l), generation_rate=float(r), seconds=float(t))
                   for s, l, r, t in rounds]
