"""Proposals for discrete inputs: pure functions following `base.Proposal`."""

from omnijax.sampling.proposals.base import Proposal
from omnijax.sampling.proposals.dlp import dlp
from omnijax.sampling.proposals.gwg import gwg
from omnijax.sampling.proposals.tokens import token_dlp, token_gwg
from omnijax.sampling.proposals.uniform import uniform

__all__ = ["Proposal", "dlp", "gwg", "make_proposal", "token_dlp", "token_gwg", "uniform"]


def make_proposal(name: str, space, **options) -> Proposal:
    """Proposal by name: "gwg", "dlp" (alias "dmala"), "uniform", or the token-space "token_gwg",
    "token_dlp" (for token targets, see proposals.tokens), with its keyword options."""
    builders = {"gwg": gwg, "dlp": dlp, "dmala": dlp, "uniform": uniform, "token_gwg": token_gwg,
                "token_dlp": token_dlp}
    if name not in builders:
        raise ValueError(f"proposal must be one of {sorted(builders)}, got {name!r}")
    return builders[name](space, **options)
