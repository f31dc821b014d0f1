"""omnijax: evaluate a trained model over its whole discrete input space (OmniInput).

Estimate the output distribution rho(z) of a model by replica exchange with gradient
proposals and reweighting, count it exactly on small spaces, and keep representative
inputs per output bin for annotation; `omnijax.evaluation` turns annotations into precision
and recall over the input space.
"""

from omnijax import evaluation as evaluation

from omnijax.sampling.enumerate import ExactOutputDistribution, enumerate_output_distribution
from omnijax.sampling.estimate import OutputDistributionEstimate, estimate_output_distribution
from omnijax.sampling.mcmc.tempering import linear_ladder
from omnijax.sampling.driver import NonFiniteOutputError
from omnijax.sampling.spaces import InputSpace

__all__ = [
    "ExactOutputDistribution",
    "InputSpace",
    "NonFiniteOutputError",
    "OutputDistributionEstimate",
    "enumerate_output_distribution",
    "estimate_output_distribution",
    "evaluation",
    "linear_ladder",
]
