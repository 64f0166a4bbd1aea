"""``hydra/launcher=slurm`` and ``slurm_cpu``'s ``_target_``: grounding.launch.slurm.SlurmLauncher, registered
where Hydra looks for launchers (the code and its documentation are in grounding/launch/slurm.py)."""
from grounding.launch.slurm import SlurmLauncher as _SlurmLauncher


class SlurmLauncher(_SlurmLauncher):
    """submitit's Slurm launcher whose multirun ends when its jobs leave the queue, with a short report."""
