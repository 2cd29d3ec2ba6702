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
    # learned methods are scored on these splits only (None = every test split of the dataset)
    learned_splits: tuple[str, ...] | None = None
    # upper bounds for hyper-parameters that size the data a step sees, never the architecture
    # (batch, validation and prediction batch sizes); applied where a method's config has the field
    config_caps: dict = dataclasses.field(default_factory=dict)
    # clip lengths for video metrics-vs-length (first L frames), where shorter than the video
    lengths: tuple[int, ...] = (10, 20, 30, 40)
    # wall-clock limit of one unit (its process: data loading, fit, scoring), past which it is killed and
    # recorded as failed; None = no limit. ``--unit-timeout`` overrides it.
    unit_timeout_s: float | None = None
    description: str = ""


RUN_PROFILES: dict[str, RunProfile] = {
    "smoke": RunProfile(
        "smoke",
        seeds=(0,),
        step_scale=1.0,
        max_steps=2,
        fit_time_budget_s=15,
        learned_eval_frames=8,
        learned_splits=("test",),
        config_caps={"batch_size": 4, "val_size": 8, "predict_batch_size": 16},
        unit_timeout_s=300,
        description="CI-sized: seconds; numbers mean nothing",
    ),
    # On a 2-core CPU one IODINE frame costs ~0.5 s to infer and a 64x64 Slot Attention frame ~0.2 s,
    # so the preview trains each learned method for seconds and scores it on the main test split only,
    # on a prefix of 32 frames (at least one sample). The generalisation splits (test_678, test_n*)
    # and full test sets are scored for every method on `paper`, and for ConnComp on every profile.
    "quick": RunProfile(
        "quick",
        seeds=(0,),
        step_scale=1.0,
        max_steps=200,
        fit_time_budget_s=8,
        learned_eval_frames=32,
        learned_splits=("test",),
        config_caps={"batch_size": 8, "val_size": 16, "predict_batch_size": 32},
        unit_timeout_s=600,
        description="CPU preview: minutes for the whole grid; learned methods barely train",
    ),
    # no limit by default: the papers' schedules take days per unit on one GPU, and they checkpoint
    "paper": RunProfile(
        "paper",
        seeds=(0, 1, 2, 3, 4),
        step_scale=1.0,
        max_steps=None,
        fit_time_budget_s=None,
        learned_eval_frames=None,
        description="the papers' schedules and split sizes, 5 seeds; for GPUs",
    ),
}


def get_run_profile(name: str) -> RunProfile:
    if name not in RUN_PROFILES:
        raise ValueError(f"unknown profile {name!r}; valid profiles: {list(RUN_PROFILES)}")
    return RUN_PROFILES[name]
