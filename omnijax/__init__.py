"""omnijax: evaluate a trained model over its whole discrete input space (OmniInput).

Estimate the output distribution rho(z) of a model by replica exchange with gradient
proposals and reweighting, count it exactly on small spaces, and keep representative
inputs per output bin for annotation; `omnijax.evaluation` turns annotations into precision
and recall over the input space.
"""

from omnijax import evaluation

from omnijax.enumerate import ExactOutputDistribution, enumerate_output_distribution
from omnijax.estimate import OutputDistributionEstimate, estimate_output_distribution
from omnijax.kernels.tempering import linear_ladder
from omnijax.run import NonFiniteOutputError
from omnijax.spaces import InputSpace

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
