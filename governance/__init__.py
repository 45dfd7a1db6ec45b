"""Governance: policy bundles released through four eyes, and the nightly monitor that proposes changes."""
