"""Published ("paper") reference rows, transcribed into ``paper_results.csv``, the one place for them.

Sources: Greff et al. 2019 (IODINE), Table 1; Monnier et al. 2021 (DTI-Sprites), Tables 1 and 5 (its
Slot Attention row cites Locatello et al. 2020); Zablotskaia et al. 2020 (the model later published as
PROVIDE), Tables 1 and 2. The ``source`` column cites author, year and table as a reader can look them
up. Conventions of the transcription:

- ``value``/``std`` are on ocbench's fraction scale (99.5 % -> 0.995); ``scale`` keeps the scale the
  source printed ("percent" or "fraction").
- ``seeds`` is the number of runs averaged by the source, empty where none is stated (Bouncing Balls);
  ``notes`` keeps the rest ("1 outlier run of 5 dropped", the K of the semantic scores, ...).
- ``protocol``: "P320" = mean over the first 320 test images (split ``protocol320``); "first L frames"
  = the first L frames of the 4-ball test videos, with L in the ``length`` column (Zablotskaia et al.
  2020, Table 1); "per-frame" = IODINE scored frame by frame, slot identity ignored (Zablotskaia et al.
  2020, §4.3; IODINE is an image model, so its Table 2 rows are per-frame too); "6-8 balls, K = 9" =
  Zablotskaia et al. 2020, Table 2, whose clip length is not stated.
- Splits: Bouncing Balls 4-ball rows -> ``test``; 6-8 balls -> ``test_678`` (binary, and colour with
  ``colours4``) or ``test_678_colours8`` (colour with 8 colours).
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

PAPER_CSV = Path(__file__).with_name("paper_results.csv")
PAPER_COLUMNS = [
    "dataset",
    "variant",
    "split",
    "method",
    "metric",
    "length",
    "value",
    "std",
    "seeds",
    "protocol",
    "source",
    "scale",
    "notes",
]
_SCALES = ("percent", "fraction")


def load_paper_rows(path: str | Path | None = None) -> pd.DataFrame:
    """The paper rows as a DataFrame (columns :data:`PAPER_COLUMNS`; length and seeds nullable Int64).

    ``path`` defaults to the packaged ``leaderboard/paper_results.csv``.
    """
    path = PAPER_CSV if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path: paper results CSV not found at {path}")
    df = pd.read_csv(path, keep_default_na=False, na_values=[""], dtype={"variant": str, "split": str})
    missing = [c for c in PAPER_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"path: {path} lacks column(s) {missing}; expected {PAPER_COLUMNS}")
    df = df[PAPER_COLUMNS].copy()
    for c in ("length", "seeds"):
        df[c] = pd.to_numeric(df[c]).astype("Int64")
    for c in ("value", "std"):
        df[c] = pd.to_numeric(df[c]).astype(float)
    for c in ("dataset", "variant", "split", "method", "metric", "protocol", "source", "scale", "notes"):
        df[c] = df[c].astype("string")
    bad = ~df["scale"].isin(_SCALES)
    if bad.any():
        raise ValueError(f"path: {path} row {int(bad.idxmax()) + 2}: scale must be one of {_SCALES}")
    if df["value"].isna().any():
        raise ValueError(f"path: {path} row {int(df['value'].isna().idxmax()) + 2}: value is empty")
    return df
