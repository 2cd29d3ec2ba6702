"""What a profile means for the run: seeds, training budget, evaluation budget.

Dataset sizes per profile live with each generator (``generators``); this is the rest. The
``quick`` profile is sized so that ``python -m benchmark run --all`` (ConnComp and every learned
method on every dataset) finishes in well under 15 minutes on a 2-core CPU; ``paper`` is the
papers' schedule for GPUs.
"""
from __future__ import annotations

import dataclasses


@dataclasses.dataclass(frozen=True)
class RunProfile:
    name: str
    seeds: tuple[int, ...]
    # training: fraction of the paper's steps, an absolute cap, and a wall-clock cap per fit
    step_scale: float
    max_steps: int | None
    fit_time_budget_s: float | None
    # evaluation of learned methods: at most this many frames per test split, taken as a fixed
    # prefix of the split (None = the whole split). Non-learned methods always see every sample.
    # The number of samples scored is stored in every record (metrics[...]["n"]).
    learned_eval_frames: int | None
    # clip lengths for video metrics-vs-length (first L frames), where shorter than the video
    lengths: tuple[int, ...] = (10, 20, 30, 40)
    description: str = ""


RUN_PROFILES: dict[str, RunProfile] = {
    "smoke": RunProfile("smoke", seeds=(0,), step_scale=1.0, max_steps=2, fit_time_budget_s=15,
                        learned_eval_frames=64, description="CI-sized: seconds; numbers mean nothing"),
    "quick": RunProfile("quick", seeds=(0,), step_scale=1.0, max_steps=150, fit_time_budget_s=12,
                        learned_eval_frames=256,
                        description="CPU preview: minutes for the whole grid; learned methods barely train"),
    "paper": RunProfile("paper", seeds=(0, 1, 2, 3, 4), step_scale=1.0, max_steps=None, fit_time_budget_s=None,
                        learned_eval_frames=None,
                        description="the papers' schedules and split sizes, 5 seeds; for GPUs"),
}


def get_run_profile(name: str) -> RunProfile:
    if name not in RUN_PROFILES:
        raise ValueError(f"unknown profile {name!r}; valid profiles: {list(RUN_PROFILES)}")
    return RUN_PROFILES[name]
