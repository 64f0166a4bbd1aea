"""Hydra plugins of the grounding harness (Hydra instantiates launchers only from the hydra_plugins package)."""
