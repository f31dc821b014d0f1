"""omnijax: evaluate a trained model over its whole discrete input space (OmniInput).

Estimate the output distribution rho(z) of a model by replica exchange with gradient
proposals and reweighting, count it exactly on small spaces, and keep representative
inputs per output bin for annotation; `omnijax.evaluation` turns annotations into precision
and recall over the input space; `omnijax.mcmc` has the sampler kernels for other JAX code.

Layout: `omnijax.sampling` (the core: spaces, targets, proposals, mcmc kernels, the block
driver, ladder, reweighting, reservoir, enumeration), `omnijax.evaluation`,
`omnijax.annotation`, `omnijax.models`, `omnijax.data`, `omnijax.training`.
"""

from omnijax import evaluation
from omnijax.sampling import mcmc, proposals
from omnijax.sampling.driver import NonFiniteOutputError
from omnijax.sampling.enumerate import ExactOutputDistribution, enumerate_output_distribution
from omnijax.sampling.estimate import estimate_output_distribution
from omnijax.sampling.mcmc.replica_exchange_kernel import linear_ladder
from omnijax.sampling.result import OutputDistributionEstimate
from omnijax.sampling.spaces import InputSpace
from omnijax.sampling.targets import Target, as_target

__all__ = [
    "ExactOutputDistribution",
    "InputSpace",
    "NonFiniteOutputError",
    "OutputDistributionEstimate",
    "Target",
    "as_target",
    "enumerate_output_distribution",
    "estimate_output_distribution",
    "evaluation",
    "linear_ladder",
    "mcmc",
    "proposals",
]


def __dir__():
    # The public face only: subpackages imported along the way (sampling, util) are not API.
    return sorted(__all__)
