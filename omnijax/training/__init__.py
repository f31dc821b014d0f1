"""Training of the models that OmniInput evaluates: classifiers (optax) and energy-based models (PCD with our own GWG sampler)."""
