"""Token-space proposals: GWG (single- and multi-site) and DLP for vocabularies of 30k-50k.

The one-hot proposals keep a (D, K) gain table per chain; at K = V = 50,257 that is 5 MB per
chain, and the one-hot input's matmul with the embedding matrix and its gradient cost a
quarter of a GPT-2's value_and_grad. These proposals work on a token target instead
(`omnijax.sampling.token_target`): the model is evaluated on embeddings gathered from E
(V, d), and a chain keeps only u = dz/de at its free positions, (F, d) float32 (77 KB for
GPT-2 small at 25 tokens). The gains

    g[i, k] = (E[k] - E[x_i]) . u_i,  i.e. the table u @ E.T minus each row's entry at x_i,

are exactly the one-hot path's (see token_target on tied heads) and are formed transiently,
one (F, d) x (d, V) product at the proposal x' (which the reverse move needs, and which is
the next step's forward table), in chunks of `vocab_chunk` columns when given.

What a chain caches besides u (`summary`): the log-mass of the move logits in blocks of
`block_size` consecutive tokens of every free row, (F, C) float32 with C = ceil(V / block)
(`default_block_size`: at V = 50,257, GWG 29 blocks of 1733, 2.9 KB; DLP 1733 blocks of 29,
173 KB at 25 positions). A forward draw reads it to pick a row (GWG) and a block, and computes
only the chosen block's logits from E and u: one value_and_grad and one table product per MH
step, the lower bound for a first-order token proposal. Multi-site GWG recomputes one row of
the table (a (d) x (d, V) product) per move after the first, on the way out and back.

E is a model parameter: proposals get it from the params of each call (`Proposal.bind`,
called by the kernels through `base.bind_params`), never as a constant. Frozen positions
([CLS], BOS, a prompt) have no row: they never move and the probabilities treat them as
fixed. Non-finite gradients: `compress` turns every inf of u into NaN and adds a NaN of any
frozen row to every free row, so log q of the reverse move is NaN (see base); a gain that
overflows to -inf from a finite u just has no mass here (the one-hot path calls it NaN).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from omnijax.sampling.proposals.base import Proposal, nan_unless_finite
from omnijax.sampling.spaces import InputSpace

__all__ = ["token_dlp", "token_gwg"]


def default_block_size(vocab: int, small: bool) -> int:
    """Tokens per block of the summary: a divisor of V near sqrt(V) (within 8x) when V has one,
    the next one above sqrt(V) (`small`: below) — then the table splits into blocks without a
    padded copy — else ceil(sqrt(V)). V = 50,257 = 29 x 1733: GWG 1733, DLP 29 (a DLP draw
    reads one block per row, so small blocks; a GWG draw one block, so few large ones)."""
    root = math.sqrt(vocab)
    divisors = [b for b in range(2, vocab) if vocab % b == 0 and root / 8 <= b <= root * 8]
    above, below = [b for b in divisors if b >= root], [b for b in divisors if b <= root]
    if small and below:
        return below[-1]
    if not small and above:
        return above[0]
    if divisors:
        return divisors[0] if small else divisors[-1]
    return max(1, math.isqrt(vocab - 1) + 1)


class _Table:
    """The move-logit table of one chain over its free rows and the V tokens, in blocks.

    logit[r, k] = beta/2 * (u_r . E_k - u_r . E_cur_r) + offset for k != cur_r and `stay` at
    k = cur_r (GWG: offset 0, stay -inf; DLP: offset -1/(2 step_size), stay 0).

    The blocks' log-masses come from one pass over the table without the entry at cur_r; the
    block holding cur_r is then recomputed from its slice of the table with that entry set
    exactly (a select over the whole table would be one more pass over it on XLA:CPU).
    """

    def __init__(self, space: InputSpace, block_size: int | None, vocab_chunk: int | None, offset: float,
                 stay: float, small_blocks: bool):
        vocab = space.num_categories
        block = default_block_size(vocab, small_blocks) if block_size is None else block_size
        if not isinstance(block, int) or block < 1:
            raise ValueError(f"block_size must be a positive int, got {block_size!r}")
        self.vocab, self.block = vocab, min(block, vocab)
        self.num_blocks = -(-vocab // self.block)
        if vocab_chunk is None:
            chunk = self.num_blocks * self.block
        else:
            if not isinstance(vocab_chunk, int) or vocab_chunk < 1:
                raise ValueError(f"vocab_chunk must be a positive int, got {vocab_chunk!r}")
            chunk = -(-vocab_chunk // self.block) * self.block  # a whole number of blocks
        self.chunks = [(a, min(a + chunk, vocab)) for a in range(0, vocab, chunk)]
        self.free = np.asarray(space.free_positions)
        self.frozen = np.flatnonzero(space.frozen_mask.reshape(-1))
        self.offset, self.stay = float(offset), float(stay)

    @staticmethod
    def _block_log_mass(logit):
        """log sum exp over the last axis; -inf for a block without mass, NaN stays NaN."""
        top = jnp.max(logit, axis=-1)
        top = jnp.where(top == -jnp.inf, 0.0, top)
        return top + jnp.log(jnp.sum(jnp.exp(logit - top[..., None]), axis=-1))

    def log_mass(self, embedding, u, x, beta):
        """(F, C) block log-masses of every free row at input x: one (F, d) x (d, V) product."""
        return self.rows_log_mass(embedding, u, x[self.free], beta)

    def rows_log_mass(self, embedding, u, cur, beta):
        """(R, C) block log-masses of rows u (R, d) whose current tokens are cur (R,)."""
        current = jnp.einsum("rd,rd->r", u, jnp.take(embedding, cur, axis=0))
        cur_block = cur // self.block
        pieces = []
        for a, b in self.chunks:
            dots = jnp.einsum("rd,vd->rv", u, embedding[a:b])
            logit = (beta / 2) * (dots - current[:, None]) + self.offset  # the entry at cur is fixed below
            pad = -(b - a) % self.block
            padded = jnp.pad(logit, ((0, 0), (0, pad)), constant_values=-jnp.inf) if pad else logit
            mass = self._block_log_mass(padded.reshape(u.shape[0], -1, self.block))
            # The block holding cur (when it lies in this chunk), from its slice of the chunk: a
            # slice kept inside the chunk, the entries before the block's start masked.
            first = jnp.clip(cur_block * self.block - a, 0, max(b - a - self.block, 0))
            width = min(self.block, b - a)
            fixed = jax.vmap(lambda row, f: jax.lax.dynamic_slice_in_dim(row, f, width))(logit, first)
            ks = a + first[:, None] + jnp.arange(width)
            fixed = jnp.where(ks == cur[:, None], self.stay, fixed)
            fixed = jnp.where(ks >= cur_block[:, None] * self.block, fixed, -jnp.inf)
            fixed = self._block_log_mass(fixed)
            inside = (cur >= a) & (cur < b)
            local = cur_block - a // self.block
            hit = inside[:, None] & (jnp.arange(mass.shape[1]) == local[:, None])
            pieces.append(jnp.where(hit, fixed[:, None], mass))
        return jnp.concatenate(pieces, axis=1) if len(pieces) > 1 else pieces[0]

    def row_log_mass(self, embedding, u_r, cur, beta):
        """(C,) block log-masses of one row (a (d) x (d, V) product)."""
        return self.rows_log_mass(embedding, u_r[None], jnp.asarray(cur)[None], beta)[0]

    def block_logits(self, embedding, u_r, cur, beta, block):
        """(block_size,) logits of one block of one row, and its token ids (vmap for several)."""
        ks = block * self.block + jnp.arange(self.block)
        rows = jnp.take(embedding, jnp.minimum(ks, self.vocab - 1), axis=0)
        dots = rows @ u_r
        current = jnp.dot(u_r, embedding[cur])
        logit = jnp.where(ks == cur, self.stay, (beta / 2) * (dots - current) + self.offset)
        return jnp.where(ks < self.vocab, logit, -jnp.inf), ks

    def entry_logit(self, embedding, u_r, cur, k, beta):
        """The logit of moving a row from token cur to token k."""
        gain = jnp.dot(u_r, embedding[k]) - jnp.dot(u_r, embedding[cur])
        return jnp.where(k == cur, self.stay, (beta / 2) * gain + self.offset)

    def compress(self, x, u):
        """kept: u at the free rows (F, d), NaN where u (at that row or any frozen row) is not finite."""
        del x
        kept = nan_unless_finite(u[self.free].astype(jnp.float32))
        if self.frozen.size:
            fixed = u[self.frozen]
            kept = kept + jnp.sum(fixed - fixed).astype(jnp.float32)  # 0, or NaN if any is not finite
        return kept


def _embedding_of(params, vocab: int) -> jax.Array:
    embedding = getattr(params, "embedding", None)
    if embedding is None or getattr(embedding, "ndim", 0) != 2:
        raise ValueError("token proposals read the embedding matrix from the model's params, which must be "
                         "omnijax.sampling.token_target.TokenParams (a token target's params); got "
                         f"{type(params).__name__}")
    if embedding.shape[0] != vocab:
        raise ValueError(f"the embedding matrix has {embedding.shape[0]} rows but the space has {vocab} categories")
    return embedding


def _unbound(*args):
    raise ValueError("a token proposal needs the model's embedding matrix: use it through omnijax's kernels, "
                     "which bind it to the params of each call (proposals.base.bind_params(proposal, params))")


def _check_gradient(u, embedding):
    if u.ndim != 2 or u.shape[1] != embedding.shape[1]:
        raise ValueError(f"a token proposal takes the gradient with respect to the input embeddings, shape "
                         f"(D, {embedding.shape[1]}), got shape {u.shape}: build value_and_grad with "
                         f"omnijax.sampling.token_target.make_value_and_grad_for(target, space, proposal)")


def _log_normalizer(log_mass):
    return jax.nn.logsumexp(log_mass)


def _cached_forms(table: _Table, embedding):
    """compress and summarize of a proposal bound to `embedding`: what both token proposals keep per
    chain (the (L, d) gradient, checked finite) and their summary (the table's log mass per block)."""
    def compress(x, u):
        _check_gradient(u, embedding)
        return table.compress(x, u)

    def summarize(x, kept, beta):
        return table.log_mass(embedding, kept, x, beta)

    return compress, summarize


def token_gwg(space: InputSpace, num_flips: int = 1, block_size: int | None = None,
              vocab_chunk: int | None = None) -> Proposal:
    """Gibbs-with-gradients over token space: `num_flips` single-position moves per proposal,
    each from softmax(g / 2) over free positions and tokens != the current one, with the
    gradient at the start of the path (as `proposals.gwg`); the reverse path is scored with
    the gradient at its end. `block_size`, `vocab_chunk`: see the module docstring."""
    if not isinstance(num_flips, int) or num_flips < 1:
        raise ValueError(f"num_flips must be a positive int, got {num_flips!r}")
    table = _Table(space, block_size, vocab_chunk, offset=0.0, stay=-jnp.inf, small_blocks=False)
    free = jnp.asarray(table.free)
    positions = jnp.arange(space.num_positions)
    row_of = jnp.asarray(np.cumsum(~space.frozen_mask.reshape(-1)) - 1, jnp.int32)  # site -> free row

    def bind(params):
        embedding = _embedding_of(params, table.vocab)

        compress, summarize = _cached_forms(table, embedding)

        def draw(key, y, kept, beta, log_mass):
            """One move from the table at y: (row, token, its log probability)."""
            row_key, block_key, entry_key = jax.random.split(key, 3)
            row_mass = jax.nn.logsumexp(log_mass, axis=1)
            r = jax.random.categorical(row_key, row_mass)
            c = jax.random.categorical(block_key, log_mass[r])
            cur = y[free[r]]
            logit, ks = table.block_logits(embedding, kept[r], cur, beta, c)
            j = jax.random.categorical(entry_key, logit)
            return r, ks[j], logit[j] - _log_normalizer(log_mass)

        def propose(key, x, kept, beta, summary):
            log_mass, y, log_q, path = summary, x, jnp.float32(0.0), []
            for t, step_key in enumerate(jax.random.split(key, num_flips)):
                r, k, log_p = draw(step_key, y, kept, beta, log_mass)
                site = free[r]
                path.append((site, y[site]))
                y, log_q = jnp.where(positions == site, k, y), log_q + log_p
                if t + 1 < num_flips:  # the table's row r at the new token
                    log_mass = log_mass.at[r].set(table.row_log_mass(embedding, kept[r], k, beta))
            return y, log_q, tuple(jnp.stack(v) for v in zip(*path))

        def log_reverse(x_new, kept_new, beta, path, x):
            del x  # the path determines the way back
            sites, olds = path
            summary = table.log_mass(embedding, kept_new, x_new, beta)
            log_mass, y, log_q = summary, x_new, jnp.float32(0.0)
            for t in reversed(range(num_flips)):
                site, old = sites[t], olds[t]
                r = row_of[site]
                log_q = log_q + table.entry_logit(embedding, kept_new[r], y[site], old, beta) - _log_normalizer(
                    log_mass)
                y = jnp.where(positions == site, old, y)
                if t > 0:
                    log_mass = log_mass.at[r].set(table.row_log_mass(embedding, kept_new[r], old, beta))
            return log_q, summary

        return Proposal(compress, propose, log_reverse, summarize, None, "embedding")

    return Proposal(_unbound, _unbound, _unbound, _unbound, bind, "embedding")


def token_dlp(space: InputSpace, step_size: float = 0.2, block_size: int | None = None,
              vocab_chunk: int | None = None) -> Proposal:
    """Discrete Langevin proposal over token space: every free position i moves independently
    to token k with probability ∝ exp(g[i, k] / 2 - [k != x_i] / (2 step_size)) (as
    `proposals.dlp`). `block_size`, `vocab_chunk`: see the module docstring."""
    if not step_size > 0:
        raise ValueError(f"step_size must be positive, got {step_size!r}")
    table = _Table(space, block_size, vocab_chunk, offset=-1.0 / (2 * step_size), stay=0.0, small_blocks=True)
    free = jnp.asarray(table.free)

    def bind(params):
        embedding = _embedding_of(params, table.vocab)

        compress, summarize = _cached_forms(table, embedding)

        def propose(key, x, kept, beta, summary):
            block_key, entry_key = jax.random.split(key)
            num_rows = free.shape[0]
            blocks = jax.random.categorical(block_key, summary, axis=1)  # (F,)
            logit, ks = jax.vmap(lambda u_r, c, b: table.block_logits(embedding, u_r, c, beta, b))(
                kept, x[free], blocks)
            j = jax.random.categorical(entry_key, logit, axis=1)
            rows = jnp.arange(num_rows)
            tokens = ks[rows, j]
            log_q = jnp.sum(logit[rows, j] - jax.nn.logsumexp(summary, axis=1))
            return x.at[free].set(tokens.astype(x.dtype)), log_q, None

        def log_reverse(x_new, kept_new, beta, move, x):
            del move
            summary = table.log_mass(embedding, kept_new, x_new, beta)
            logit = jax.vmap(lambda u_r, c, k: table.entry_logit(embedding, u_r, c, k, beta))(
                kept_new, x_new[free], x[free])
            return jnp.sum(logit - jax.nn.logsumexp(summary, axis=1)), summary

        return Proposal(compress, propose, log_reverse, summarize, None, "embedding")

    return Proposal(_unbound, _unbound, _unbound, _unbound, bind, "embedding")
