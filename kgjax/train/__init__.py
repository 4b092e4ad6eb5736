"""Training: state, optimizers, losses, the pure train step and the host loop."""
