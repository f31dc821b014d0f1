"""histogram.bin_index: numpy float32 inputs stay in numpy and give exactly the bins of the jnp path."""

import jax.numpy as jnp
import numpy as np

from omnijax.sampling.histogram import bin_index


def test_numpy_and_jnp_give_the_same_bins_at_edges_outside_and_for_nan():
    edges = np.array([-1.0, -0.3, 0.1, 0.7, 2.0])
    rng = np.random.default_rng(0)
    z = rng.uniform(-1.5, 2.5, 2000).astype(np.float32)
    # Every edge itself (the last one belongs to the top bin), values next to the edges, NaN and +-inf.
    e32 = edges.astype(np.float32)
    z = np.concatenate([z, e32, np.nextafter(e32, np.float32(-np.inf)), np.nextafter(e32, np.float32(np.inf)),
                        np.array([np.nan, np.inf, -np.inf], np.float32)])
    host = bin_index(z, edges)
    assert isinstance(host, np.ndarray) and host.dtype == np.int32
    device = np.asarray(bin_index(jnp.asarray(z), edges))
    np.testing.assert_array_equal(host, device)
    assert host[2000 + 4] == 3 and host[2000] == 0  # the top edge: last bin; the bottom edge: first bin
    assert host[-3] == 4 and host[-2] == 4 and host[-1] == -1  # NaN and +inf above, -inf below
