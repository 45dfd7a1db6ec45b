"""Synthetic markets (issue 5): the ESG constraint loss and a VAE over exposures so far; the conditional
GAN, fidelity report and DAG follow. Never reads Redis."""
