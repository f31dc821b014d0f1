"""The paper's toy task (§3.1): sequences of L digits whose digit sum is divisible by 30.

A language model over the vocabulary {0..9, BOS} learns to generate such sequences; its
output z is the mean negative log-likelihood per token of a digit sequence. The input space
is all 10^L digit sequences, small enough to count exactly for L <= 8, and the constraint is
an exact annotator: r(z) is the fraction of a bin's sequences that satisfy it.

Training sequences are drawn uniformly from the satisfying ones without listing them: a
table of completion counts (how many ways to finish a prefix with a given residue) gives
each next digit's exact probability, so the draw is a pure function of a PRNG key.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

NUM_DIGITS = 10
BOS = NUM_DIGITS          # the begin-of-sequence token id, after the digits
VOCAB_SIZE = NUM_DIGITS + 1


def check_task(length: int, divisor: int) -> None:
    """ValueError naming `length` or `divisor` when the task is impossible or cannot be counted."""
    if not isinstance(length, (int, np.integer)) or isinstance(length, bool) or not 1 <= length <= 12:
        raise ValueError(f"length must be an int in [1, 12] (10^length sequences), got {length!r}")
    if not isinstance(divisor, (int, np.integer)) or isinstance(divisor, bool) or divisor < 2:
        raise ValueError(f"divisor must be an int >= 2, got {divisor!r}")


def satisfies(sequences, divisor: int = 30) -> np.ndarray:
    """Whether each digit sequence (..., L) has a digit sum divisible by `divisor` (bool (...,))."""
    sequences = np.asarray(sequences)
    return np.sum(sequences, axis=-1) % divisor == 0


def constraint_statistic(divisor: int = 30):
    """statistic_fn for `omnijax.enumerate_output_distribution`: 1.0 where one sequence (L,) satisfies."""
    def statistic(sequence):
        return (jnp.sum(sequence) % divisor == 0).astype(jnp.float32)
    return statistic


def completion_counts(length: int, divisor: int) -> np.ndarray:
    """float64 (length + 1, divisor): entry [p, r] counts the digit strings for positions p..L-1
    that bring a prefix of residue r to a total divisible by `divisor` (exact below 2^53)."""
    check_task(length, divisor)
    counts = np.zeros((length + 1, divisor))
    counts[length, 0] = 1.0
    residues = np.arange(divisor)
    for p in range(length - 1, -1, -1):
        for digit in range(NUM_DIGITS):
            counts[p] += counts[p + 1][(residues + digit) % divisor]
    return counts


def num_satisfying(length: int, divisor: int = 30) -> int:
    """How many of the 10^length sequences satisfy the constraint."""
    return int(completion_counts(length, divisor)[0, 0])


def sample_satisfying(key: jax.Array, num: int, length: int, divisor: int = 30) -> jax.Array:
    """`num` sequences drawn uniformly from the satisfying ones, int32 (num, length)."""
    with np.errstate(divide="ignore"):
        log_counts = jnp.asarray(np.log(completion_counts(length, divisor)), jnp.float32)
    digits = jnp.arange(NUM_DIGITS)

    def next_digit(residue, position_and_key):
        position, step_key = position_and_key
        logits = log_counts[position + 1][(residue[:, None] + digits[None, :]) % divisor]
        digit = jax.random.categorical(step_key, logits, axis=-1)
        return (residue + digit) % divisor, digit

    keys = jax.random.split(key, length)
    _, sequence = jax.lax.scan(next_digit, jnp.zeros(num, jnp.int32), (jnp.arange(length), keys))
    return sequence.T.astype(jnp.int32)


def digits_to_tokens(onehot_digits: jax.Array) -> jax.Array:
    """One-hot digits (L, 10) -> one-hot tokens (L, 11): the BOS column is zero."""
    return jnp.pad(onehot_digits, ((0, 0), (0, VOCAB_SIZE - NUM_DIGITS)))
