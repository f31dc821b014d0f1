"""Padded lengths (`omnijax.util.padding`) and the programs that use them to share compiles: the
random starts of a space and the MBAR solve over all samples give the same numbers as unpadded."""

import jax
import jax.numpy as jnp
import numpy as np

import omnijax as oj
from omnijax.sampling import reweighting, spaces
from omnijax.util.padding import padded_length


def test_padded_lengths_cover_n_with_bounded_padding():
    for n in list(range(1, 3000)) + [65535, 65536, 65537, 100_000, 281_600, 1_000_003]:
        p = padded_length(n)
        assert p >= n
        if n <= 1 << 16:
            assert p & (p - 1) == 0 and p < 2 * n
        else:
            assert p <= 1.25 * n
    assert padded_length(0) == 1


def test_random_inputs_equal_randint_bit_for_bit_and_share_one_compile():
    space = oj.InputSpace((6, 5), 3)
    sizes = []
    # 90 and 120 categories (below MIN_DRAW: one draw of MIN_DRAW), 300,000 and 315,000 (one padded draw).
    for num in (3, 4, 10_000, 10_500):
        key = jax.random.key(num)
        x = space.random_inputs(key, num)
        sizes.append(spaces._uniform_categories._cache_size())
        expected = jax.random.randint(key, (num, 6, 5), 0, 3, dtype=jnp.int32)
        assert x.shape == (num, 6, 5) and x.dtype == jnp.int32
        np.testing.assert_array_equal(np.asarray(x), np.asarray(expected))
    assert sizes[1] == sizes[0] and sizes[3] == sizes[2], "nearby sizes compiled the draw again"
    assert 30 * 10_000 > spaces.MIN_DRAW > 30 * 4


def test_random_inputs_keep_frozen_positions():
    mask = np.zeros((4, 3), bool)
    mask[0] = True
    space = oj.InputSpace((4, 3), 5, frozen_mask=mask, frozen_values=np.full((4, 3), 4))
    x = np.asarray(space.random_inputs(jax.random.key(0), 50))
    assert np.all(x[:, 0] == 4) and x[:, 1:].min() >= 0 and x[:, 1:].max() < 5
    assert len(np.unique(x[:, 1:])) == 5  # the free positions take every category


def test_padded_mbar_solve_matches_the_unpadded_one():
    rng = np.random.default_rng(0)
    betas = np.array([-1.0, 0.0, 0.7, 1.5], np.float32)
    replica = np.repeat(np.arange(4), 300).astype(np.int32)[:1100]  # 1,100 samples: padded to 2,048
    z = (rng.normal(size=replica.size) + 2 * betas[replica]).astype(np.float32)
    log_w, free = reweighting.mbar_log_weights(z, replica, betas)
    ref_w, ref_f, ok = reweighting._log_weights_jit(z, replica, np.ones_like(z), betas, reweighting.TOL,
                                                    reweighting.MAX_ITER)
    assert bool(ok) and log_w.shape == z.shape
    np.testing.assert_allclose(np.asarray(log_w), np.asarray(ref_w), rtol=0, atol=2e-5)
    np.testing.assert_allclose(np.asarray(free), np.asarray(ref_f), rtol=0, atol=2e-5)
    edges = np.linspace(z.min(), z.max(), 9)
    binned = reweighting.log_rho_from_weights(log_w, z, edges)
    direct = reweighting.log_rho_from_samples(z, replica, betas, edges)
    np.testing.assert_allclose(binned, direct, rtol=0, atol=1e-4)
    # the fraction of all inputs: the bins hold every sample, so their masses sum to one
    assert abs(np.logaddexp.reduce(binned)) < 1e-5
