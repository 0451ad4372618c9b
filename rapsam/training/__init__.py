"""Training components of RAP-SAM: Hungarian matching, losses, point sampling, the training loop."""
