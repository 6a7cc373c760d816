"""Regenerate ``smoke_metrics.json``: the golden scores of the notebook chain on params/smoke.yaml.

    python tests/golden/regenerate.py

Runs the chain (``audioreg run -f params/smoke.yaml``) into a temporary root and keeps each
model's per-target scores rounded to 4 decimals, the part sizes and the verdict.
``tests/test_notebooks.py`` compares every run of the smoke chain with this file: a change in
the data, the features, the split, a model or a metric shows up there as a diff to review.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
GOLDEN = HERE / "smoke_metrics.json"
METRICS = ("smse", "mae", "accuracy", "acc1", "acc2", "mirex")


def golden_view(metrics_json: dict) -> dict:
    """What the golden file pins: rounded scores, sizes and the verdict (no paths, no timings)."""
    def rounded(v):
        return None if v is None else round(float(v), 4)

    return {"n_test": metrics_json["n_test"], "n_val": metrics_json["val"]["n"],
            "scores": {m: {t: {k: rounded(row.get(k)) for k in METRICS if row.get(k) is not None}
                           for t, row in per_target.items()}
                       for m, per_target in metrics_json["metrics"].items()},
            "noise_ceiling": {t: rounded(v) for t, v in (metrics_json.get("noise_ceiling") or {}).items()},
            "verdict": metrics_json["verdict"]}


def main() -> int:
    sys.path.insert(0, str(REPO / "lib"))
    from audioreg import runner

    with tempfile.TemporaryDirectory() as work:
        result = runner.run(["params/smoke.yaml"], {"root": work}, run_id="smoke", root=REPO)
        data = json.loads((result.run_dir / "metrics.json").read_text(encoding="utf-8"))
    GOLDEN.write_text(json.dumps(golden_view(data), indent=1, sort_keys=True) + "\n", encoding="utf-8")
    print(f"wrote {GOLDEN}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
