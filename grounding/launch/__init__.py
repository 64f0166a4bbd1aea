"""Launching sweeps on a scheduler: Hydra's submitit launcher for Slurm that notices jobs leaving the queue and reports failed shards in a few lines."""
