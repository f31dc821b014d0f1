"""The sampling core: input spaces, proposals, MCMC kernels, the block driver, the ladder,
reweighting, the representative reservoir and exact enumeration."""
