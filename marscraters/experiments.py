"""The paper's architecture test campaigns (DeLatte et al. 2019, Tables 1-3), rerun and tabulated.

The paper trains the same eight Symmetric UNet variants (:data:`ARCHITECTURES`) on three
data-target pairs (:data:`CAMPAIGNS`):

``S``
    synthetic grey dots on black with solid-circle targets (section 3.1, Table 1);
``C``
    THEMIS crater images with filled-circle targets (section 3.2, Table 2);
``O``
    the same images with outline targets, a disk minus its inner 70 % (section 3.3, Table 3).

Tests 1-3 repeat the default network (3x3 kernels, the default filters) with different seeds,
4 and 7 vary the kernel size, 5 and 6 the filter multiple, and 8 combines 4 and 6.
:func:`run_campaign` trains each test with :func:`marscraters.training.train` into
``out_dir/{campaign}-{test}/`` (resumable: a finished test is skipped, a partial one continues
from its ``last.keras``), then writes a table like the paper's (``campaign_{X}.csv`` and
``.md``), the learning curves of all tests (``campaign_{X}.png``) and a side-by-side comparison
with the paper's published numbers (``campaign_{X}_vs_paper.md``, from :data:`PAPER_TABLES`).

On a machine with N GPUs, N tests run at once, one per GPU, as the paper ran four at a time on
four GTX 1080s: each test is a subprocess (``python -m marscraters.experiments _worker SPEC``)
with ``CUDA_VISIBLE_DEVICES`` set to its GPU.  Without a GPU the tests run one after another in
this process.

Faithfulness defaults (each can be changed): plain binary cross-entropy (``dice_weight=0``), no
augmentation, Adam at a constant 1e-3 (the Keras default the paper most likely used), the
paper's dropout (0.2 to 0.5).  What cannot be the paper's on a CPU is documented in
:class:`CampaignSettings`: the dots' dataset size, and 384 x 384 crops of the 416 x 416 THEMIS
chips instead of the paper's 512 x 512 sub-images of whole 30° tiles.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import asdict, dataclass, fields, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, NamedTuple, Sequence

import numpy as np
import pandas as pd

from ._io import atomic_path
from .errors import InvalidArgumentError, ModelError

__all__ = [
    "Architecture",
    "ARCHITECTURES",
    "Campaign",
    "CAMPAIGNS",
    "PAPER_TABLES",
    "CampaignSettings",
    "parse_tests",
    "detect_gpus",
    "gpu_slots",
    "campaign_data",
    "experiment_config",
    "run_campaign",
    "summarize_campaign",
    "plot_campaign",
    "markdown_table",
    "write_campaign_outputs",
    "chip_split",
    "default_chips_folder",
    "compare_with_paper",
    "add_experiments_parser",
    "run_experiments_cli",
]

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------
# the paper's tests and campaigns
# --------------------------------------------------------------------------------------------
class Architecture(NamedTuple):
    """One architecture test: the convolution kernel size and the multiple of the default filters."""

    kernel_size: int
    filter_multiple: float


#: The eight architecture tests of Tables 1-3 (the same in every campaign).
ARCHITECTURES: dict[int, Architecture] = {
    1: Architecture(3, 1.0),
    2: Architecture(3, 1.0),
    3: Architecture(3, 1.0),
    4: Architecture(7, 1.0),
    5: Architecture(3, 0.5),
    6: Architecture(3, 2.0),
    7: Architecture(11, 1.0),
    8: Architecture(7, 2.0),
}


class Campaign(NamedTuple):
    """A data-target pair of the paper."""

    letter: str
    kind: str  # the target kind of marscraters.targets
    data: str  # "dots" or "chips"
    description: str
    paper_table: str


#: The three campaigns: ``S`` (synthetic dots), ``C`` (crater chips, filled targets), ``O`` (outlines).
CAMPAIGNS: dict[str, Campaign] = {
    "S": Campaign("S", "filled", "dots", "synthetic grey dots on black, solid-circle targets", "Table 1"),
    "C": Campaign("C", "filled", "chips", "THEMIS Day IR crater images, filled-circle targets", "Table 2"),
    "O": Campaign("O", "outline", "chips", "THEMIS Day IR crater images, outline targets (inner 70 % cut)", "Table 3"),
}

_NaN = float("nan")


def _paper_table(rows: list[tuple[Any, ...]], with_500: bool) -> pd.DataFrame:
    cols = ["test", "loss_at_50", "accuracy_at_50"]
    if with_500:
        cols += ["loss_at_500", "accuracy_at_500", "seconds_per_epoch"]
    frame = pd.DataFrame(rows, columns=cols)
    number = frame["test"].str.split("-").str[1].astype(int)
    frame.insert(1, "kernel", [f"{ARCHITECTURES[n].kernel_size}x{ARCHITECTURES[n].kernel_size}" for n in number])
    frame.insert(2, "filter_multiple", [ARCHITECTURES[n].filter_multiple for n in number])
    if not with_500:
        frame["loss_at_500"] = frame["accuracy_at_500"] = frame["seconds_per_epoch"] = _NaN
    return frame


#: **The paper's published numbers** (DeLatte et al. 2019, Tables 1-3), for reference only:
#: binary cross-entropy loss and pixel accuracy at 50 (and 500) epochs, and seconds per epoch on
#: one 8 GB NVIDIA GeForce GTX 1080 (four tests ran at once on four GPUs).  Table 1 gives neither
#: 500-epoch values nor timings (NaN).  These are not results of this package.
PAPER_TABLES: dict[str, pd.DataFrame] = {
    "S": _paper_table(
        [("S-1", 0.0502, 0.9871), ("S-2", 0.0305, 0.9894), ("S-3", 0.0802, 0.9851), ("S-4", 0.0164, 0.9939),
         ("S-5", 0.1835, 0.8627), ("S-6", 0.0144, 0.9948), ("S-7", 0.0185, 0.9928), ("S-8", 0.0130, 0.9947)],
        with_500=False,
    ),
    "C": _paper_table(
        [("C-1", 0.147, 0.9568, 0.271, 0.9618, 35), ("C-2", 0.152, 0.9553, 0.261, 0.9616, 36),
         ("C-3", 0.160, 0.9536, 0.288, 0.9617, 36), ("C-4", 0.248, 0.9618, 0.398, 0.9658, 75),
         ("C-5", 0.166, 0.9485, 0.182, 0.9582, 29), ("C-6", 0.169, 0.9621, 0.374, 0.9652, 57),
         ("C-7", 0.272, 0.9626, 0.416, 0.9658, 137), ("C-8", 0.345, 0.9644, 0.446, 0.9662, 130)],
        with_500=True,
    ),
    "O": _paper_table(
        [("O-1", 0.098, 0.9721, 0.1453, 0.9754, 33), ("O-2", 0.098, 0.9718, 0.1342, 0.9746, 34),
         ("O-3", 0.111, 0.9668, 0.1315, 0.9742, 35), ("O-4", 0.142, 0.9761, 0.2192, 0.9777, 67),
         ("O-5", 0.114, 0.9669, 0.0958, 0.9735, 29), ("O-6", 0.097, 0.9743, 0.2030, 0.9768, 52),
         ("O-7", 0.166, 0.9740, 0.2360, 0.9782, 129), ("O-8", 0.184, 0.9775, 0.2399, 0.9785, 127)],
        with_500=True,
    ),
}


def _campaign(campaign: str) -> Campaign:
    key = str(campaign).strip().upper()
    if key not in CAMPAIGNS:
        raise InvalidArgumentError(
            f"unknown campaign {campaign!r}: use S (synthetic dots), C (crater chips, filled targets) "
            "or O (crater chips, outline targets)"
        )
    return CAMPAIGNS[key]


def parse_tests(tests: str | int | Sequence[int]) -> list[int]:
    """The test numbers of a selection such as ``"1-8"``, ``"1,4,6"`` or ``"2-3,7"``.

    Returns sorted, de-duplicated numbers, each one of :data:`ARCHITECTURES`.

    Examples
    --------
    >>> parse_tests("2-3,7")
    [2, 3, 7]
    >>> parse_tests([6, 1, 6])
    [1, 6]
    """
    valid = f"{min(ARCHITECTURES)}-{max(ARCHITECTURES)}"
    if isinstance(tests, (int, np.integer)) and not isinstance(tests, bool):
        numbers = [int(tests)]
    elif isinstance(tests, str):
        numbers = []
        text = tests.replace(" ", "")
        if not text:
            raise InvalidArgumentError(f"no tests selected: give numbers or ranges such as '1-8' or '1,4,6' ({valid})")
        for part in text.split(","):
            m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
            if not m:
                raise InvalidArgumentError(
                    f"cannot read test selection {tests!r} at {part!r}: use numbers and ranges such as '1-8', "
                    f"'1,4,6' or '2-3,7' (tests {valid})"
                )
            lo, hi = int(m.group(1)), int(m.group(2) or m.group(1))
            if hi < lo:
                raise InvalidArgumentError(f"test range {part!r} in {tests!r} runs backwards; write it as {hi}-{lo}")
            numbers.extend(range(lo, hi + 1))
    else:
        try:
            numbers = [int(t) for t in tests]
        except (TypeError, ValueError) as exc:
            raise InvalidArgumentError(f"tests must be a string such as '1-8' or a list of numbers, got {tests!r}") from exc
    bad = sorted({n for n in numbers if n not in ARCHITECTURES})
    if bad:
        raise InvalidArgumentError(f"test number(s) {bad} do not exist: the paper's tests are {valid}")
    if not numbers:
        raise InvalidArgumentError(f"no tests selected in {tests!r} (tests {valid})")
    return sorted(set(numbers))


# --------------------------------------------------------------------------------------------
# settings and data
# --------------------------------------------------------------------------------------------
def default_chips_folder() -> Path:
    """The real THEMIS chips: ``$MARSCRATERS_SHARED_DATA/themis-dayir-crops``, else ``../shared/data/...`` of the repo."""
    env = os.environ.get("MARSCRATERS_SHARED_DATA")
    base = Path(env) if env else Path(__file__).resolve().parents[1].parent / "shared" / "data"
    return base / "themis-dayir-crops"


@dataclass(frozen=True)
class CampaignSettings:
    """Data and training settings shared by all tests of a campaign (None: the campaign's default).

    Attributes
    ----------
    n_train, n_val
        Training and validation images.  ``S``: 128 and 32 dot images (the paper does not give its
        dataset size; 128 images of 128 x 128 keep a 3x3 epoch at about 2 s on a 2-core CPU, cf.
        the paper's "about 10 seconds per epoch" on a laptop CPU).  ``C``/``O``: 400 and 100
        chips, drawn (seeded by ``data_seed``) from all chips outside ``holdout``; training and
        validation chips never overlap.  Use fewer to run at a size a machine allows.
    size
        Side of the dot images (``S``), a multiple of 128.
    chips
        Folder of labelled chips (``C``/``O``); default :func:`default_chips_folder`.
    holdout
        ``(start, stop)``: chip numbers never used here (default 500-599, the held-out test set);
        ``0 <= start < stop``, else :class:`~marscraters.errors.InvalidArgumentError` (a backwards
        span would hold out nothing and leak the test chips into training).
    crop
        Training patch side, a multiple of 128.  ``S``: the whole image.  ``C``/``O``: 384, a
        random window of each 416 x 416 chip (the paper's sub-images were 512 x 512; padding the
        chips to 512 would add mirrored, unlabelled craters).
    batch_size, learning_rate, cosine_decay
        Adam with a constant rate by default (the paper names no schedule).
    dice_weight, augment
        0 and False: the paper's plain binary cross-entropy on unaugmented data.
    score_every, score_d_min
        Crater-level precision/recall/F1 on the validation images every N epochs (``S``: 1,
        ``C``/``O``: 5), counting craters of at least ``score_d_min`` px (``S``: 6, the smallest
        dot; ``C``/``O``: 16, where the Robbins labels are complete).
    extract_method
        Circle finder of :func:`marscraters.extract.extract_craters` for those scores.  ``S``:
        ``"components"`` (the dots are clean disks; 17x faster than template matching at the
        same F1 within 0.01, which matters when scoring every epoch).  ``C``/``O``: ``"auto"``.
    seed
        Test ``n`` trains with seed ``seed + n`` (so the repeats 1-3 differ).
    data_seed
        Seed of the dots and of the chip split: the same data for every test, as in the paper.
    """

    n_train: int | None = None
    n_val: int | None = None
    size: int = 128
    chips: str | None = None
    holdout: tuple[int, int] = (500, 600)
    crop: int | None = None
    batch_size: int = 8
    learning_rate: float = 1e-3
    cosine_decay: bool = False
    dice_weight: float = 0.0
    augment: bool = False
    score_every: int | None = None
    score_d_min: float | None = None
    extract_method: str | None = None
    seed: int = 0
    data_seed: int = 0

    def __post_init__(self) -> None:
        # a backwards span holds out nothing (lo <= n < hi is never true): the test chips would
        # leak into training, so refuse it here, before any data is drawn or any test trains
        object.__setattr__(self, "holdout", _check_holdout(self.holdout))  # frozen: set the ints once

    def resolved(self, campaign: str) -> "CampaignSettings":
        """These settings with every None replaced by ``campaign``'s default, checked."""
        c = _campaign(campaign)
        dots = c.data == "dots"
        out = replace(
            self,
            n_train=self.n_train if self.n_train is not None else (128 if dots else 400),
            n_val=self.n_val if self.n_val is not None else (32 if dots else 100),
            crop=self.crop if self.crop is not None else (self.size if dots else 384),
            score_every=self.score_every if self.score_every is not None else (1 if dots else 5),
            score_d_min=self.score_d_min if self.score_d_min is not None else (6.0 if dots else 16.0),
            extract_method=self.extract_method or ("components" if dots else "auto"),
            chips=None if dots else str(self.chips if self.chips is not None else default_chips_folder()),
        )
        if out.n_train < 1 or out.n_val < 1:
            raise InvalidArgumentError(f"n_train and n_val must be >= 1, got {out.n_train} and {out.n_val}")
        for name in ("size", "crop"):
            if getattr(out, name) % 128 or getattr(out, name) < 128:
                raise InvalidArgumentError(
                    f"{name}={getattr(out, name)} must be a positive multiple of 128 (the UNet pools 7 times)"
                )
        if out.batch_size < 1 or out.score_every < 1:
            raise InvalidArgumentError(f"batch_size and score_every must be >= 1, got {out.batch_size}, {out.score_every}")
        return out

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "CampaignSettings":
        """Settings from a dict (JSON), rejecting unknown names with the list of known ones."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise InvalidArgumentError(f"unknown campaign setting(s) {unknown}; known: {sorted(known)}")
        # __post_init__ checks holdout and makes it a tuple of ints; None keeps the default
        return cls(**{k: v for k, v in values.items() if not (k == "holdout" and v is None)})


def _check_holdout(holdout: Any) -> tuple[int, int]:
    """``holdout`` as ``(start, stop)`` ints, refused unless chip numbers with ``0 <= start < stop``."""
    try:
        lo, hi = holdout
        ok = all(not isinstance(v, bool) and float(v).is_integer() for v in (lo, hi))
        lo, hi = int(lo), int(hi)
    except (TypeError, ValueError, OverflowError):
        ok = False
    if not ok:
        raise InvalidArgumentError(f"holdout must be two whole chip numbers START STOP (the chips START..STOP-1 are "
                                   f"held out), got {holdout!r}; e.g. 500 600")
    if lo < 0 or lo >= hi:
        why = "chip numbers start at 0" if lo < 0 else "which holds out no chip"
        fix = f"write it as {hi} {lo}" if 0 <= hi < lo else (f"e.g. 0 {hi}" if lo < 0 < hi else "e.g. 500 600")
        raise InvalidArgumentError(f"holdout must be START STOP with 0 <= START < STOP (the chips START..STOP-1 are "
                                   f"held out), got {lo} {hi}, {why}; {fix}")
    return lo, hi


def _dots_set(n: int, size: int, seed: int, fixed_targets: bool) -> Any:
    from .synthetic import synthetic_dots
    from .training import TrainingSet

    images, targets, circles = synthetic_dots(n, size, seed=seed, return_circles=True)
    craters = pd.concat([c[["x", "y", "diameter_px"]].assign(image=i) for i, c in enumerate(circles)], ignore_index=True)
    # validation keeps targets=None: train() then scores crater-level F1 against the circles;
    # draw_targets draws exactly the generator's disks, so the pixel targets are the same
    return TrainingSet((images / 255.0).astype(np.float32), craters[["image", "x", "y", "diameter_px"]],
                       [f"dots{seed}-{i}" for i in range(n)], targets if fixed_targets else None)


def _chip_numbers(folder: Path) -> list[int]:
    image_dir = folder / "images" if (folder / "images").is_dir() else folder
    numbers = []
    for p in image_dir.iterdir() if image_dir.is_dir() else ():
        m = re.search(r"(\d+)$", p.stem)
        if m and p.suffix.lower() in (".jpg", ".jpeg", ".png", ".tif", ".tiff") and not p.name.startswith("."):
            numbers.append(int(m.group(1)))
    return sorted(numbers)


def chip_split(settings: CampaignSettings) -> tuple[list[int], list[int]]:
    """The training and validation chip numbers of a ``C``/``O`` campaign (disjoint, seeded).

    All chips of ``settings.chips`` outside ``settings.holdout`` are shuffled with
    ``settings.data_seed``; the first ``n_train`` train and the next ``n_val`` validate.
    """
    from .errors import CatalogNotFoundError

    folder = Path(settings.chips or default_chips_folder())
    numbers = _chip_numbers(folder)
    if not numbers:
        raise CatalogNotFoundError(
            f"no labelled chips in {folder}: pass --chips with a folder holding images/ and labels/ "
            "(the THEMIS crops are in ../shared/data/themis-dayir-crops), or set MARSCRATERS_SHARED_DATA"
        )
    lo, hi = settings.holdout
    pool = [n for n in numbers if not lo <= n < hi]
    n_train, n_val = int(settings.n_train or 0), int(settings.n_val or 0)
    if n_train + n_val > len(pool):
        raise InvalidArgumentError(
            f"{folder} has {len(pool)} chips outside the held-out {lo}-{hi - 1}, fewer than n_train + n_val = "
            f"{n_train} + {n_val}; lower --n-train/--n-val"
        )
    order = np.random.default_rng(settings.data_seed).permutation(len(pool))
    return [pool[i] for i in order[:n_train]], [pool[i] for i in order[n_train : n_train + n_val]]


def campaign_data(campaign: str, settings: CampaignSettings | None = None) -> tuple[Any, Any]:
    """The training and validation :class:`~marscraters.training.TrainingSet` of a campaign.

    ``S``: ``n_train`` dot images (seed ``data_seed``) and ``n_val`` others (seed
    ``data_seed + 1000``), with the dots' true circles as craters.  ``C``/``O``: the chips of
    :func:`chip_split`.

    Examples
    --------
    >>> tr, va = campaign_data("S", CampaignSettings(n_train=4, n_val=2))  # doctest: +SKIP
    >>> len(tr), len(va), tr.images.shape[1:]  # doctest: +SKIP
    (4, 2, (128, 128))
    """
    c = _campaign(campaign)
    s = (settings or CampaignSettings()).resolved(c.letter)
    if c.data == "dots":
        return (_dots_set(s.n_train, s.size, s.data_seed, True),  # type: ignore[arg-type]
                _dots_set(s.n_val, s.size, s.data_seed + 1000, False))  # type: ignore[arg-type]
    from .chips import read_chips
    from .training import chips_training_set

    train_ids, val_ids = chip_split(s)
    chips = read_chips(s.chips, indices=train_ids + val_ids)  # type: ignore[arg-type]
    n = len(train_ids)
    return chips_training_set(chips, range(n)), chips_training_set(chips, range(n, n + len(val_ids)))


def experiment_config(campaign: str, test: int, epochs: int, settings: CampaignSettings | None = None) -> Any:
    """The :class:`~marscraters.training.TrainConfig` of one test of a campaign.

    Examples
    --------
    >>> cfg = experiment_config("O", 8, 50)  # doctest: +SKIP
    >>> cfg.kind, cfg.kernel_size, cfg.filter_multiple, cfg.dice_weight  # doctest: +SKIP
    ('outline', 7, 2.0, 0.0)
    """
    from .training import TrainConfig

    c = _campaign(campaign)
    (test,) = parse_tests(test)
    if int(epochs) < 1:
        raise InvalidArgumentError(f"epochs must be >= 1, got {epochs}")
    s = (settings or CampaignSettings()).resolved(c.letter)
    arch = ARCHITECTURES[test]
    return TrainConfig(
        kind=c.kind, kernel_size=arch.kernel_size, filter_multiple=arch.filter_multiple, epochs=int(epochs),
        batch_size=s.batch_size, crop=int(s.crop), learning_rate=s.learning_rate,  # type: ignore[arg-type]
        cosine_decay=s.cosine_decay, dice_weight=s.dice_weight, augment=s.augment,
        contrast=0.2 if s.augment else 0.0, score_every=int(s.score_every),  # type: ignore[arg-type]
        score_d_min=float(s.score_d_min), seed=s.seed + test, monitor="val_crater_f1",  # type: ignore[arg-type]
        extract_options={"method": s.extract_method},
    )


# --------------------------------------------------------------------------------------------
# GPUs
# --------------------------------------------------------------------------------------------
def detect_gpus() -> list[str]:
    """The GPU ids this process may use: from ``CUDA_VISIBLE_DEVICES`` when set, else ``nvidia-smi -L``.

    Returns an empty list when there is no GPU (or no driver); never raises.
    """
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        ids = [v.strip() for v in env.split(",") if v.strip()]
        # CUDA stops at the first invalid id: "-1" (or "") hides every GPU
        out = []
        for v in ids:
            if v.startswith("-"):
                break
            out.append(v)
        return out
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return []
    try:
        text = subprocess.run([exe, "-L"], capture_output=True, text=True, timeout=20, check=True).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [m.group(1) for m in re.finditer(r"^GPU (\d+):", text, flags=re.M)]


def gpu_slots(gpus: int | str | Sequence[str] | None) -> list[str]:
    """The ``CUDA_VISIBLE_DEVICES`` value of each parallel worker; empty means "run in this process".

    Parameters
    ----------
    gpus
        ``0`` (or None): no workers, sequential in this process.  ``"auto"``: one worker per
        detected GPU (:func:`detect_gpus`).  ``N``: the first N detected GPUs.  A list of strings:
        these ``CUDA_VISIBLE_DEVICES`` values, one worker each (``["", ""]`` runs two CPU workers).
        When GPUs are asked for but none is found, the fallback to sequential CPU training is logged.
    """
    if gpus is None or (isinstance(gpus, (int, np.integer)) and not isinstance(gpus, bool) and int(gpus) == 0):
        return []
    if isinstance(gpus, str):
        if gpus.strip().lower() != "auto":
            try:
                gpus = int(gpus)
            except ValueError:
                raise InvalidArgumentError(f"gpus must be 'auto', a number or a list of GPU ids, got {gpus!r}") from None
            return gpu_slots(gpus)
        found = detect_gpus()
        if not found:
            log.info("no GPU found (nvidia-smi / CUDA_VISIBLE_DEVICES): running the tests one after another on the CPU")
        return found
    if isinstance(gpus, (int, np.integer)) and not isinstance(gpus, bool):
        if gpus < 0:
            raise InvalidArgumentError(f"gpus must be >= 0, got {gpus}")
        found = detect_gpus()
        if not found:
            log.warning("%d GPU(s) asked for but none found: running the tests one after another on the CPU", gpus)
            return []
        if len(found) < gpus:
            log.warning("%d GPU(s) asked for but only %d found (%s): using those", gpus, len(found), ",".join(found))
        return found[: int(gpus)]
    try:
        return [str(g) for g in gpus]
    except TypeError:
        raise InvalidArgumentError(f"gpus must be 'auto', a number or a list of GPU ids, got {gpus!r}") from None


# --------------------------------------------------------------------------------------------
# running tests
# --------------------------------------------------------------------------------------------
def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def _test_dir(out_dir: Path, campaign: str, test: int) -> Path:
    return out_dir / f"{campaign}-{test}"


def _history(run_dir: Path) -> list[dict[str, float]]:
    from .training import _read_history

    return _read_history(run_dir / "history.csv")


def _finished(run_dir: Path, epochs: int) -> bool:
    return (run_dir / "last.keras").exists() and len(_history(run_dir)) >= epochs


_MUST_MATCH = ("kind", "kernel_size", "filter_multiple", "dice_weight", "batch_size", "crop", "augment")


def _check_resumable(run_dir: Path, config: Any) -> None:
    """Refuse to continue a run folder that holds a different experiment."""
    path = run_dir / "config.json"
    if not path.exists() or not (run_dir / "last.keras").exists():
        return
    old = json.loads(path.read_text())
    new = config.to_dict()
    diff = {k: (old.get(k), new[k]) for k in _MUST_MATCH if k in old and old.get(k) != new[k]}
    if diff:
        what = ", ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in diff.items())
        raise InvalidArgumentError(
            f"{run_dir} holds a run with other settings ({what}); "
            "choose another --out, or pass restart=True (--restart) to train it again from scratch"
        )


def _run_test_here(campaign: str, test: int, epochs: int, out_dir: Path, settings: CampaignSettings,
                   *, restart: bool, verbose: int | str, data: tuple[Any, Any] | None = None) -> dict[str, Any]:
    """Train one test in this process; returns the run record (pid, start and end times)."""
    from .model import _keras
    from .training import train

    run_dir = _test_dir(out_dir, campaign, test)
    config = experiment_config(campaign, test, epochs, settings)
    if not restart:
        _check_resumable(run_dir, config)
    started = _now()
    tr, va = data if data is not None else campaign_data(campaign, settings)
    meta = {"data": {"campaign": campaign, "test": f"{campaign}-{test}", **asdict(settings.resolved(campaign))}}
    try:
        train(tr, va, run_dir, config, resume=not restart, verbose=verbose, metadata=meta)
    finally:
        _keras().backend.clear_session()  # free the graph before the next test in this process
    return {"pid": os.getpid(), "worker_started": started, "worker_finished": _now(),
            "cuda_visible_devices": os.environ.get("CUDA_VISIBLE_DEVICES")}


def _write_json(path: Path, value: dict[str, Any]) -> None:
    with atomic_path(path, overwrite=True) as tmp:
        tmp.write_text(json.dumps(value, indent=2, default=str))


def _worker_main(argv: Sequence[str]) -> int:
    """``python -m marscraters.experiments _worker SPEC.json``: train one test (the GPU pool's worker)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    spec = json.loads(Path(argv[0]).read_text())
    settings = CampaignSettings.from_dict(spec["settings"])
    record = _run_test_here(spec["campaign"], int(spec["test"]), int(spec["epochs"]), Path(spec["out_dir"]),
                            settings, restart=bool(spec["restart"]), verbose=2)
    _write_json(Path(spec["result"]), record)
    return 0


def _launch(campaign: str, test: int, epochs: int, out_dir: Path, settings: CampaignSettings, restart: bool,
            slot: str) -> tuple[subprocess.Popen, Any, Path]:
    run_dir = _test_dir(out_dir, campaign, test)
    run_dir.mkdir(parents=True, exist_ok=True)
    result = run_dir / "worker_result.json"
    result.unlink(missing_ok=True)
    spec = {"campaign": campaign, "test": test, "epochs": epochs, "out_dir": str(out_dir), "restart": restart,
            "settings": asdict(settings), "result": str(result)}
    spec_path = run_dir / "worker_spec.json"
    _write_json(spec_path, spec)
    env = dict(os.environ)
    env["CUDA_VISIBLE_DEVICES"] = slot
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    env["PYTHONUNBUFFERED"] = "1"  # worker.log can be followed while it trains
    # the worker must import this very package, installed or not
    pkg_root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = pkg_root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    logfile = open(run_dir / "worker.log", "a")  # noqa: SIM115 - closed when the worker ends
    logfile.write(f"\n=== {_now()} {campaign}-{test} on CUDA_VISIBLE_DEVICES={slot!r} ===\n")
    logfile.flush()
    proc = subprocess.Popen([sys.executable, "-m", "marscraters.experiments", "_worker", str(spec_path)],
                            stdout=logfile, stderr=subprocess.STDOUT, env=env, cwd=os.getcwd())
    return proc, logfile, result


def _run_pool(campaign: str, tests: list[int], epochs: int, out_dir: Path, settings: CampaignSettings,
              restart: bool, slots: list[str], bar: Any) -> dict[int, dict[str, Any]]:
    """Run ``tests`` as subprocesses, at most one per slot at a time; returns their run records."""
    pending = list(tests)
    free = list(range(len(slots)))
    running: dict[int, tuple[int, subprocess.Popen, Any, Path, str]] = {}  # test -> (slot index, proc, log, result, start)
    records: dict[int, dict[str, Any]] = {}
    try:
        while pending or running:
            while pending and free:
                test, k = pending.pop(0), free.pop(0)
                proc, logfh, result = _launch(campaign, test, epochs, out_dir, settings, restart, slots[k])
                running[test] = (k, proc, logfh, result, _now())
                log.info("%s-%d started on CUDA_VISIBLE_DEVICES=%r (pid %d)", campaign, test, slots[k], proc.pid)
                bar.set_postfix_str("running " + ", ".join(f"{campaign}-{t}" for t in sorted(running)))
            time.sleep(0.2)
            for test in [t for t, v in running.items() if v[1].poll() is not None]:
                k, proc, logfh, result, started = running.pop(test)
                logfh.close()
                free.append(k)
                rec: dict[str, Any] = {"started": started, "finished": _now(), "slot": slots[k], "pid": proc.pid,
                                       "returncode": proc.returncode}
                if result.exists():
                    rec.update(json.loads(result.read_text()))
                rec["status"] = "failed" if proc.returncode else "done"
                if proc.returncode:
                    log.error("%s-%d failed (exit %d); see %s", campaign, test, proc.returncode,
                              _test_dir(out_dir, campaign, test) / "worker.log")
                _write_json(_test_dir(out_dir, campaign, test) / "run.json", rec)  # kept even if we are interrupted
                records[test] = rec
                bar.update(1)
                bar.set_postfix_str("running " + ", ".join(f"{campaign}-{t}" for t in sorted(running)) if running else "")
    except BaseException:
        for _, proc, _, _, _ in running.values():  # only the workers this pool started
            proc.terminate()
        for _, proc, logfh, _, _ in running.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
            logfh.close()
        raise
    return records


def run_campaign(
    campaign: str,
    tests: str | Sequence[int] = "1-8",
    epochs: int = 50,
    out_dir: str | os.PathLike = "experiments",
    *,
    gpus: int | str | Sequence[str] | None = "auto",
    settings: CampaignSettings | None = None,
    report_epochs: Sequence[int] = (50, 500),
    restart: bool = False,
    progress: bool = True,
    verbose: int | str = "auto",
    **options: Any,
) -> pd.DataFrame:
    """Run (or resume) the tests of one of the paper's campaigns and tabulate them.

    Parameters
    ----------
    campaign
        ``"S"``, ``"C"`` or ``"O"`` (:data:`CAMPAIGNS`).
    tests
        Test numbers, e.g. ``"1-8"`` or ``[1, 4, 6]`` (:func:`parse_tests`).
    epochs
        Epochs per test (the paper: 50 for ``S``, 500 for ``C``/``O``).
    out_dir
        Each test trains into ``out_dir/{campaign}-{test}/`` (checkpoints, ``history.csv``,
        ``history.png``, ``run.json``); the campaign's tables and plots go to ``out_dir``.
    gpus
        ``"auto"`` (default): one test per detected GPU at a time, each in its own process with
        ``CUDA_VISIBLE_DEVICES`` set; with no GPU, a logged fallback to sequential CPU training in
        this process.  ``0``: sequential in this process.  ``N``: the first N GPUs.  A list of
        ``CUDA_VISIBLE_DEVICES`` values: one worker process each (see :func:`gpu_slots`).
    settings
        Data and training settings (:class:`CampaignSettings`); ``**options`` override its fields
        (``n_train=40``, ``chips="path"``, ``dice_weight=1.0``, ``augment=True``, ...).
    report_epochs
        Epochs whose loss and accuracy go into the table (those beyond ``epochs`` are left out);
        the last epoch is always reported.
    restart
        Train every selected test again from scratch instead of resuming.
    progress
        A tqdm bar over the tests (Keras' per-epoch bars follow ``verbose`` in sequential mode;
        parallel workers log one line per epoch to ``worker.log``).
    verbose
        Keras ``fit`` verbosity for tests run in this process.

    Returns
    -------
    pandas.DataFrame
        One row per test, see :func:`summarize_campaign`.  Also written to
        ``out_dir/campaign_{X}.csv`` and ``.md``, with ``campaign_{X}.png`` (learning curves) and
        ``campaign_{X}_vs_paper.md`` (:func:`compare_with_paper`); these summaries are rewritten
        on every call.

    Raises
    ------
    ModelError
        After the tables are written, if a worker process failed (its ``worker.log`` is named).

    Examples
    --------
    >>> table = run_campaign("S", "1-8", 50, "experiments", gpus="auto")  # doctest: +SKIP
    >>> table[["test", "kernel", "filter_multiple", "val_loss_at_50", "f1_best"]]  # doctest: +SKIP
    """
    from tqdm.auto import tqdm

    c = _campaign(campaign)
    numbers = parse_tests(tests)
    if int(epochs) < 1:
        raise InvalidArgumentError(f"epochs must be >= 1, got {epochs}")
    epochs = int(epochs)
    base = settings or CampaignSettings()
    if options:
        base = CampaignSettings.from_dict({**asdict(base), **options})
    s = base.resolved(c.letter)
    if c.data == "chips":
        chip_split(s)  # a missing folder or too few chips fails here, not in every worker
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    slots = gpu_slots(gpus)

    todo, records = [], {}
    for t in numbers:
        run_dir = _test_dir(out, c.letter, t)
        if not restart and _finished(run_dir, epochs):
            log.info("%s-%d already has %d epochs: skipped", c.letter, t, epochs)
            records[t] = {**_read_run_json(run_dir), "status": "skipped (finished)"}
        else:
            if not restart:  # fail before any training if a folder holds another experiment
                _check_resumable(run_dir, experiment_config(c.letter, t, epochs, s))
            todo.append(t)
    bar = tqdm(total=len(numbers), initial=len(numbers) - len(todo), desc=f"campaign {c.letter}", unit="test",
               disable=not progress)
    try:
        if slots and todo:
            log.info("running %d test(s) on %d worker(s) (CUDA_VISIBLE_DEVICES %s)", len(todo), len(slots), slots)
            records.update(_run_pool(c.letter, todo, epochs, out, s, restart, slots, bar))
        elif todo:
            data = campaign_data(c.letter, s)  # the same data for every test, loaded once
            for t in todo:
                bar.set_postfix_str(f"running {c.letter}-{t}")
                started = _now()
                rec = _run_test_here(c.letter, t, epochs, out, s, restart=restart, verbose=verbose, data=data)
                rec.update({"started": started, "finished": _now(), "slot": "in-process", "returncode": 0,
                            "status": "done"})
                records[t] = rec
                _write_json(_test_dir(out, c.letter, t) / "run.json", rec)
                bar.update(1)
    finally:
        bar.close()

    table = summarize_campaign(c.letter, out, numbers, epochs=epochs, report_epochs=report_epochs, records=records)
    write_campaign_outputs(table, c.letter, out)
    failed = table[table["status"] == "failed"]
    if len(failed):
        logs = ", ".join(str(_test_dir(out, c.letter, int(t.split("-")[1])) / "worker.log") for t in failed["test"])
        raise ModelError(f"campaign {c.letter}: test(s) {', '.join(failed['test'])} failed; see {logs}. "
                         "Fix the cause and run the same command again: finished tests are kept.")
    return table


def _read_run_json(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "run.json"
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except json.JSONDecodeError:
        return {}


# --------------------------------------------------------------------------------------------
# tables and plots
# --------------------------------------------------------------------------------------------
_METRICS = (("loss", "loss"), ("accuracy", "accuracy"), ("val_loss", "val_loss"), ("val_accuracy", "val_accuracy"))


def summarize_campaign(
    campaign: str,
    out_dir: str | os.PathLike,
    tests: str | Sequence[int] = "1-8",
    *,
    epochs: int | None = None,
    report_epochs: Sequence[int] = (50, 500),
    records: dict[int, dict[str, Any]] | None = None,
) -> pd.DataFrame:
    """The campaign table, read from the test folders' ``history.csv`` (no training).

    Columns: ``test``, ``kernel``, ``filter_multiple``, ``seed``, ``epochs_done``; for each
    report epoch ``e`` (not beyond ``epochs``) ``loss_at_e``, ``accuracy_at_e``,
    ``val_loss_at_e``, ``val_accuracy_at_e``; the same for the last epoch (``loss_last``...);
    ``seconds_per_epoch`` (median over epochs); crater-level ``f1_best``, ``f1_best_epoch``,
    ``f1_last``, ``precision_last``, ``recall_last`` (validation, last scored epoch);
    ``status``, ``started``, ``finished`` (UTC), ``slot`` (``CUDA_VISIBLE_DEVICES`` or
    ``in-process``), ``pid`` and ``run_dir``.
    """
    c = _campaign(campaign)
    out = Path(out_dir)
    numbers = parse_tests(tests)
    records = records or {}
    rows = []
    for t in numbers:
        run_dir = _test_dir(out, c.letter, t)
        hist = pd.DataFrame(_history(run_dir))
        rec = {**_read_run_json(run_dir), **records.get(t, {})}
        cfg = json.loads((run_dir / "config.json").read_text()) if (run_dir / "config.json").exists() else {}
        arch = ARCHITECTURES[t]
        n = len(hist)
        row: dict[str, Any] = {"test": f"{c.letter}-{t}", "kernel": f"{arch.kernel_size}x{arch.kernel_size}",
                               "filter_multiple": arch.filter_multiple, "seed": cfg.get("seed", _NaN), "epochs_done": n}
        target = epochs if epochs is not None else n
        for e in [int(e) for e in report_epochs if 0 < int(e) <= max(target, 1)]:
            for name, col in _METRICS:
                row[f"{name}_at_{e}"] = float(hist[col].iloc[e - 1]) if col in hist and n >= e else _NaN
        for name, col in _METRICS:
            row[f"{name}_last"] = float(hist[col].iloc[-1]) if col in hist and n else _NaN
        row["seconds_per_epoch"] = float(hist["seconds_per_epoch"].median()) if "seconds_per_epoch" in hist and n else _NaN
        f1 = hist["val_crater_f1"] if "val_crater_f1" in hist else pd.Series(dtype=float)
        scored = f1.dropna()
        if len(scored):
            best = int(scored.idxmax())
            row.update({"f1_best": float(scored.max()), "f1_best_epoch": best + 1, "f1_last": float(scored.iloc[-1]),
                        "f1_last_epoch": int(scored.index[-1]) + 1})
            for m in ("precision", "recall"):
                col = f"val_crater_{m}"
                row[f"{m}_last"] = float(hist[col].iloc[scored.index[-1]]) if col in hist else _NaN
        else:
            row.update({"f1_best": _NaN, "f1_best_epoch": _NaN, "f1_last": _NaN, "f1_last_epoch": _NaN,
                        "precision_last": _NaN, "recall_last": _NaN})
        status = rec.get("status")
        if status is None:
            status = "not run" if n == 0 else "partial"
        if status == "done" and epochs is not None and n < epochs:
            status = "partial"
        row.update({"status": status, "started": rec.get("started", ""), "finished": rec.get("finished", ""),
                    "slot": rec.get("slot", ""), "pid": rec.get("pid", _NaN), "run_dir": str(run_dir)})
        rows.append(row)
    return pd.DataFrame(rows)


_TABLE_FORMATS = {"seconds_per_epoch": ".2f", "epochs_done": ".0f", "f1_best_epoch": ".0f", "f1_last_epoch": ".0f",
                  "seed": ".0f", "filter_multiple": "g"}


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if isinstance(value, (float, np.floating)):
        return f"{value:.{digits}f}"
    return str(value)


def markdown_table(frame: pd.DataFrame, *, digits: int = 4, formats: dict[str, str] | None = None) -> str:
    """A GitHub-flavoured Markdown table of ``frame`` (NaN shown as –), without extra dependencies."""
    formats = formats or {}
    cols = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(cols) + " |", "|" + "|".join("---" for _ in cols) + "|"]
    for _, r in frame.iterrows():
        cells = []
        for col in frame.columns:
            v = r[col]
            if col in formats and isinstance(v, (int, float, np.number)) and math.isfinite(float(v)):
                cells.append(format(v, formats[col]))
            else:
                cells.append(_fmt(v, digits))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _device_description() -> str:
    gpus = detect_gpus()
    return f"{os.cpu_count()}-core host" + (f", GPU(s) {','.join(gpus)}" if gpus else ", no GPU")


def _loss_title(dice_weights: Sequence[float | None]) -> str:
    """What the plotted loss is: :func:`marscraters.training.bce_dice_loss` adds ``dice_weight``
    times the soft-Dice loss to the binary cross-entropy (plain BCE, the paper's, at 0)."""
    from .training import _loss_name

    weights = set(dice_weights)
    if len(weights) == 1 and None not in weights:
        return _loss_name(weights.pop())
    # tests trained with different (or unrecorded) weights: each one's is in its key entry
    return "BCE + dice weight × soft-Dice loss (each test's weight in the key)"


def _test_label(row: Any, dice_weight: float | None = None, *, with_dice: bool = False) -> str:
    """A legend entry a reader understands: the test, its network, and which repeat it is."""
    name = str(row["test"])
    kernel = str(row["kernel"]).replace("x", "×")
    label = f"{name}: {kernel} kernels, {float(row['filter_multiple']):g}× the default filters"
    number = int(name.rsplit("-", 1)[1]) if name.rsplit("-", 1)[-1].isdigit() else None
    if number in (1, 2, 3):
        # the paper's tests 1-3 are the same network, trained again with another seed
        seed = float(row.get("seed", _NaN))
        label += f", repeat {number}" + (f" (seed {seed:g})" if math.isfinite(seed) else "")
    if with_dice:
        label += f", dice weight {dice_weight:g}" if dice_weight is not None else ", dice weight unknown"
    return label


def _campaign_figure(table: pd.DataFrame, *, title: str = "") -> Any:
    """The figure of :func:`plot_campaign` (a matplotlib Figure, no pyplot); None when no test has a history."""
    import matplotlib
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    from .training import _run_dice_weight

    runs = []
    for _, r in table.iterrows():
        hist = pd.DataFrame(_history(Path(r["run_dir"])))
        if not hist.empty:
            runs.append((r, hist, _run_dice_weight(Path(r["run_dir"]) / "history.csv")))
    if not runs:
        return None
    fig = Figure(figsize=(16, 5.2), layout="constrained")
    axes = fig.subplots(1, 3, sharex=True)
    colours = matplotlib.colormaps["tab10"]
    weights = [w for _, _, w in runs]
    mixed = len(set(weights)) > 1 or None in weights
    handles = []
    n_max = 1
    for i, (r, hist, w) in enumerate(runs):
        ep = np.arange(1, len(hist) + 1)
        n_max = max(n_max, len(hist))
        colour = colours(i % 10)
        few = len(hist) < 20  # markers, so a single epoch still shows
        for ax, (tr, va) in zip(axes[:2], (("loss", "val_loss"), ("accuracy", "val_accuracy"))):
            if tr in hist:
                ax.plot(ep, hist[tr], color=colour, marker="o" if few else None, ms=3)
            if va in hist:
                ax.plot(ep, hist[va], color=colour, ls="--", marker="o" if few else None, ms=3, mfc="none")
        if "val_crater_f1" in hist and hist["val_crater_f1"].notna().any():
            ok = hist["val_crater_f1"].notna().to_numpy()
            axes[2].plot(ep[ok], hist["val_crater_f1"][ok], color=colour, marker="o", ms=4)
        handles.append(Line2D([], [], color=colour, lw=2, label=_test_label(r, w, with_dice=mixed)))
    panels = ((f"loss: {_loss_title(weights)}", "loss (log scale, lower is better)"),
              ("pixel accuracy", "fraction of pixels right (threshold 0.5)"),
              ("crater-level F1 on the validation images", "F1 (0 to 1, higher is better)"))
    for ax, (name, ylabel) in zip(axes, panels):
        ax.set_title(name, fontsize=10)
        ax.set_ylabel(ylabel)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
    if not axes[2].lines:
        axes[2].text(0.5, 0.5, "no crater-level scores yet", ha="center", va="center", transform=axes[2].transAxes,
                     color="0.4")
    # whole epochs on all three panels (shared), with room around a single one
    axes[0].xaxis.set_major_locator(MaxNLocator(integer=True, min_n_ticks=1))
    axes[0].set_xlim(1 - max(0.5, 0.02 * n_max), n_max + max(0.5, 0.02 * n_max))
    axes[0].set_yscale("log")
    style = [Line2D([], [], color="0.3", label="training images"),
             Line2D([], [], color="0.3", ls="--", label="validation images")]
    fig.legend(handles=handles + style, loc="outside lower center", ncols=min(3, len(handles) + 2), fontsize=9,
               frameon=False)
    if title:
        fig.suptitle(title)
    return fig


def plot_campaign(table: pd.DataFrame, path: str | os.PathLike, *, title: str = "") -> Path:
    """Learning curves of all tests of a campaign overlaid: loss, pixel accuracy and crater F1 per epoch.

    Training curves are solid, validation curves dashed; crater-level F1 is on the validation
    images.  The loss is named from the tests' ``config.json`` (binary cross-entropy, plus the
    soft-Dice loss when ``dice_weight`` > 0); one key below the panels names each test's network.
    """
    fig = _campaign_figure(table, title=title)
    if fig is None:
        raise ModelError("no test of this campaign has a training history yet: nothing to plot")
    path = Path(path)
    with atomic_path(path, overwrite=True) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    return path


def compare_with_paper(table: pd.DataFrame, campaign: str) -> str:
    """Markdown: the paper's published table for ``campaign`` beside this run's numbers.

    The paper's values (:data:`PAPER_TABLES`) are labelled as such.  The paper does not say
    whether its loss and accuracy are training or validation values (its loss rising from 50 to
    500 epochs while accuracy rises, which it calls overfitting, suggests validation); both of
    ours are shown.

    Examples
    --------
    >>> print(compare_with_paper(table, "S"))  # doctest: +SKIP
    """
    c = _campaign(campaign)
    paper = PAPER_TABLES[c.letter].set_index("test")
    ours = table.set_index("test") if len(table) else pd.DataFrame()
    epochs_at = [50, 500] if c.letter != "S" else [50]
    rows = []
    for test in paper.index:
        p = paper.loc[test]
        o = ours.loc[test] if test in ours.index else None
        row: dict[str, Any] = {"test": test, "kernel": p["kernel"], "filters": f"x{p['filter_multiple']:g}"}
        for e in epochs_at:
            row[f"paper loss@{e}"] = p[f"loss_at_{e}"]
            row[f"ours val loss@{e}"] = o.get(f"val_loss_at_{e}", _NaN) if o is not None else _NaN
            row[f"ours train loss@{e}"] = o.get(f"loss_at_{e}", _NaN) if o is not None else _NaN
            row[f"paper acc@{e}"] = p[f"accuracy_at_{e}"]
            row[f"ours val acc@{e}"] = o.get(f"val_accuracy_at_{e}", _NaN) if o is not None else _NaN
            row[f"ours train acc@{e}"] = o.get(f"accuracy_at_{e}", _NaN) if o is not None else _NaN
        if o is not None and int(o.get("epochs_done", 0)) not in epochs_at:
            row["ours epochs"] = int(o.get("epochs_done", 0))
            row["ours val loss@last"] = o.get("val_loss_last", _NaN)
            row["ours val acc@last"] = o.get("val_accuracy_last", _NaN)
        if c.letter != "S":
            row["paper s/epoch (GTX 1080)"] = p["seconds_per_epoch"]
        row["ours s/epoch"] = o.get("seconds_per_epoch", _NaN) if o is not None else _NaN
        row["ours crater F1 best"] = o.get("f1_best", _NaN) if o is not None else _NaN
        rows.append(row)
    frame = pd.DataFrame(rows)
    # keep the columns every row can fill, in first-seen order
    frame = frame[[col for col in dict.fromkeys(k for r in rows for k in r)]]
    run_tests = [t for t in paper.index if t in ours.index]
    head = (
        f"## Campaign {c.letter}: {c.description}\n\n"
        f"Columns marked **paper** are DeLatte et al. (2019), {c.paper_table}, as published "
        "(one GTX 1080 per test), hard-coded in `marscraters.experiments.PAPER_TABLES`; they are not our results. "
        f"Columns marked **ours** come from this run ({', '.join(run_tests) or 'no test run yet'}; "
        f"{_device_description()}); – means not run or not reached. The paper does not say whether its loss "
        "and accuracy are training or validation values, so both of ours are given. Crater-level F1 "
        "(validation) has no counterpart in the paper.\n\n"
    )
    return head + markdown_table(frame, formats={"paper s/epoch (GTX 1080)": ".0f", "ours s/epoch": ".2f",
                                                 "ours epochs": ".0f"})


def write_campaign_outputs(table: pd.DataFrame, campaign: str, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write ``campaign_{X}.csv``, ``.md``, ``.png`` and ``campaign_{X}_vs_paper.md`` into ``out_dir``.

    These summaries are derived from the test folders and rewritten on every call.
    """
    c = _campaign(campaign)
    out = Path(out_dir)
    paths = {"csv": out / f"campaign_{c.letter}.csv", "md": out / f"campaign_{c.letter}.md",
             "png": out / f"campaign_{c.letter}.png", "paper": out / f"campaign_{c.letter}_vs_paper.md"}
    with atomic_path(paths["csv"], overwrite=True) as tmp:
        table.to_csv(tmp, index=False)
    shown = [col for col in table.columns if col not in ("started", "finished", "pid", "run_dir", "slot")]
    from .training import _loss_name, _run_dice_weight

    # what the loss columns hold: binary cross-entropy, plus the soft-Dice loss when dice_weight > 0
    weights = {w for d in table.get("run_dir", []) if (w := _run_dice_weight(Path(d) / "history.csv")) is not None}
    loss = (_loss_name(weights.pop()) if len(weights) == 1 else "binary cross-entropy" if not weights
            else "BCE + dice_weight × soft-Dice loss (each test's dice_weight is in its config.json)")
    text = (f"# Campaign {c.letter}: {c.description}\n\n"
            f"Architecture tests of DeLatte et al. (2019) {c.paper_table}, rerun with marscraters "
            f"({_device_description()}). Loss is {loss}, accuracy is pixel accuracy; `val_` = "
            "validation images; F1 is crater-level on the validation images.\n\n"
            + markdown_table(table[shown], formats=_TABLE_FORMATS))
    with atomic_path(paths["md"], overwrite=True) as tmp:
        tmp.write_text(text)
    with atomic_path(paths["paper"], overwrite=True) as tmp:
        tmp.write_text(compare_with_paper(table, c.letter))
    try:
        plot_campaign(table, paths["png"], title=f"Campaign {c.letter}: {c.description}")
    except ModelError as exc:
        log.warning("%s", exc)
        paths.pop("png")
    return paths


# --------------------------------------------------------------------------------------------
# command line
# --------------------------------------------------------------------------------------------
def add_experiments_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``experiments`` subcommand to the ``marscraters`` command's subparsers."""
    s = subparsers.add_parser(
        "experiments", help="rerun the paper's architecture test campaigns (Tables 1-3) and tabulate them",
        description="Train the eight architecture tests of DeLatte et al. (2019) on one data-target pair and "
                    "write a table like the paper's, learning curves, and a comparison with the paper's numbers.",
    )
    s.add_argument("--campaign", required=True, type=str.upper, choices=sorted(CAMPAIGNS),
                   help="S: synthetic dots; C: crater chips, filled targets; O: crater chips, outline targets")
    s.add_argument("--tests", default="1-8", help="tests to run, e.g. 1-8, 1,4,6 or 2-3,7 (default 1-8)")
    s.add_argument("--epochs", type=int, default=50, help="epochs per test (default 50; the paper: 50 for S, 500 for C/O)")
    s.add_argument("--out", default="experiments", help="output folder (default ./experiments)")
    s.add_argument("--gpus", default="auto",
                   help="'auto' (one test per detected GPU at once; CPU: one after another), 0, or a number")
    s.add_argument("--chips", help="labelled chip folder for C/O (default ../shared/data/themis-dayir-crops)")
    s.add_argument("--n-train", type=int, help="training images (default S: 128 dot images, C/O: 400 chips)")
    s.add_argument("--n-val", type=int, help="validation images (default S: 32, C/O: 100), disjoint from training")
    s.add_argument("--holdout", nargs=2, type=int, default=[500, 600], metavar=("START", "STOP"),
                   help="chip numbers never used (default 500 600, the held-out test set)")
    s.add_argument("--size", type=int, default=128, help="dot image side for S, a multiple of 128")
    s.add_argument("--crop", type=int, help="training patch side, a multiple of 128 (default S: --size, C/O: 384)")
    s.add_argument("--batch-size", type=int, default=8)
    s.add_argument("--learning-rate", type=float, default=1e-3)
    s.add_argument("--cosine-decay", action="store_true", help="cosine learning-rate decay (default: constant)")
    s.add_argument("--dice-weight", type=float, default=0.0, help="add soft Dice (default 0: the paper's plain BCE)")
    s.add_argument("--augment", action="store_true", help="flips, rotations and contrast (default off, as the paper)")
    s.add_argument("--score-every", type=int, help="crater-level F1 every N epochs (default S: 1, C/O: 5)")
    s.add_argument("--extract-method", choices=["auto", "components", "hough", "template"],
                   help="circle finder for the crater F1 (default S: components, C/O: auto)")
    s.add_argument("--seed", type=int, default=0, help="test n trains with seed SEED + n")
    s.add_argument("--data-seed", type=int, default=0, help="seed of the dots and of the chip split")
    s.add_argument("--report-epochs", nargs="+", type=int, default=[50, 500], help="epochs reported in the table")
    s.add_argument("--restart", action="store_true", help="train the selected tests again from scratch")
    s.set_defaults(func=run_experiments_cli)
    return s


def run_experiments_cli(args: argparse.Namespace) -> int:
    """Run the ``experiments`` subcommand (see :func:`add_experiments_parser`)."""
    gpus: Any = args.gpus
    if isinstance(gpus, str) and gpus.strip().lower() != "auto":
        try:
            gpus = int(gpus)
        except ValueError:
            raise InvalidArgumentError(f"--gpus must be 'auto' or a number, got {args.gpus!r}") from None
    quiet = bool(getattr(args, "quiet", False))
    settings = CampaignSettings(
        n_train=args.n_train, n_val=args.n_val, size=args.size, chips=args.chips, holdout=tuple(args.holdout),
        crop=args.crop, batch_size=args.batch_size, learning_rate=args.learning_rate, cosine_decay=args.cosine_decay,
        dice_weight=args.dice_weight, augment=args.augment, score_every=args.score_every,
        extract_method=args.extract_method, seed=args.seed,
        data_seed=args.data_seed,
    )
    table = run_campaign(args.campaign, args.tests, args.epochs, args.out, gpus=gpus, settings=settings,
                         report_epochs=args.report_epochs, restart=args.restart, progress=not quiet,
                         verbose=0 if quiet else "auto")
    cols = [c for c in ("test", "kernel", "filter_multiple", "epochs_done", "loss_last", "accuracy_last",
                        "val_loss_last", "val_accuracy_last", "seconds_per_epoch", "f1_best", "f1_last", "status")
            if c in table]
    print(markdown_table(table[cols], formats=_TABLE_FORMATS))
    print(f"wrote {Path(args.out) / f'campaign_{args.campaign}.csv'} (.md, .png) and campaign_{args.campaign}_vs_paper.md")
    return 0


if __name__ == "__main__":  # the GPU pool's worker: python -m marscraters.experiments _worker SPEC.json
    if len(sys.argv) == 3 and sys.argv[1] == "_worker":
        sys.exit(_worker_main(sys.argv[2:]))
    print("usage: marscraters experiments --campaign S|C|O ... (this module's own entry point is internal)",
          file=sys.stderr)
    sys.exit(2)
