"""What the experiment scripts do, as functions the tests can call: training or loading the
model, sampling it, and writing the run's files. Experiments only; the library never imports it."""
