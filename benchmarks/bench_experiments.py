"""Per-epoch cost of the paper's eight architectures on the S campaign, and the full campaign's time.

Runs the real campaign code (``marscraters.experiments.run_campaign``) on a tiny S campaign
(16 training and 8 validation dot images of 128 x 128, 3 epochs, tests 1 and 4-8; tests 2-3 are
test 1's architecture), takes the fastest of epochs 2-3 as the steady-state cost (epoch 1 traces
the graphs), times the per-epoch crater scoring on the default 32 validation images, and
extrapolates to the default S campaign (128 + 32 images, 16 training batches per epoch) at 50
epochs.  Prints each architecture's cost relative to the default network (S-1).

    python benchmarks/bench_experiments.py
"""

from __future__ import annotations

import os
import tempfile
import time

import pandas as pd

from marscraters.experiments import ARCHITECTURES, CampaignSettings, campaign_data, run_campaign
from marscraters.model import load_model
from marscraters.training import crater_scores

TESTS = [1, 4, 5, 6, 7, 8]
TINY_TRAIN, TINY_VAL, EPOCHS = 16, 8, 3
FULL = CampaignSettings().resolved("S")  # the defaults: 128 training, 32 validation images
SCALE = FULL.n_train / TINY_TRAIN  # training and validation batches both grow 8x


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        run_campaign("S", TESTS, EPOCHS, tmp, gpus=0, n_train=TINY_TRAIN, n_val=TINY_VAL, report_epochs=(1,),
                     progress=False, verbose=0)
        wall = time.perf_counter() - t0
        _, val = campaign_data("S", FULL)
        rows = []
        for t in TESTS:
            hist = pd.read_csv(os.path.join(tmp, f"S-{t}", "history.csv"))
            steady = float(hist["seconds_per_epoch"].iloc[1:].min())
            model = load_model(os.path.join(tmp, f"S-{t}", "last.keras"))
            crater_scores(model, val, d_min=FULL.score_d_min, extract_options={"method": FULL.extract_method})
            s0 = time.perf_counter()
            crater_scores(model, val, d_min=FULL.score_d_min, extract_options={"method": FULL.extract_method})
            score = time.perf_counter() - s0
            arch = ARCHITECTURES[t]
            rows.append({"test": f"S-{t}", "kernel": arch.kernel_size, "filters": arch.filter_multiple,
                         "tiny s/epoch": steady, "full s/epoch": steady * SCALE, "scoring s": score,
                         "full epoch+score s": steady * SCALE + score})
    df = pd.DataFrame(rows)
    df["x S-1"] = df["full epoch+score s"] / df.loc[0, "full epoch+score s"]
    print(f"tiny campaign: {len(TESTS)} tests x {EPOCHS} epochs in {wall:.0f} s wall")
    print(df.to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    per_epoch_all8 = df["full epoch+score s"].sum() + 2 * df.loc[0, "full epoch+score s"]  # tests 2-3 = test 1
    print(f"default S campaign (tests 1-8, {FULL.n_train}+{FULL.n_val} images): {per_epoch_all8:.0f} s per epoch of "
          f"all 8 tests -> 50 epochs ~ {50 * per_epoch_all8 / 3600:.1f} h (+ ~10 s start-up per test)")


if __name__ == "__main__":
    main()
