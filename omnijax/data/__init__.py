"""Datasets the experiments use, with offline sources so defaults work without internet."""
