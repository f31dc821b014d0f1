"""Proposals for discrete inputs: pure functions following `base.Proposal`."""

from omnijax.sampling.proposals.base import Proposal
from omnijax.sampling.proposals.dlp import dlp
from omnijax.sampling.proposals.gwg import gwg
from omnijax.sampling.proposals.uniform import uniform

__all__ = ["Proposal", "dlp", "gwg", "uniform", "make_proposal"]


def make_proposal(name: str, space, **options) -> Proposal:
    """Proposal by name: "gwg", "dlp" (alias "dmala") or "uniform", with its keyword options."""
    builders = {"gwg": gwg, "dlp": dlp, "dmala": dlp, "uniform": uniform}
    if name not in builders:
        raise ValueError(f"proposal must be one of {sorted(builders)}, got {name!r}")
    return builders[name](space, **options)
