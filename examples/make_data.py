"""Regenerate examples/data/loans.csv: a small synthetic loan-approval table.

Numeric and categorical features, an application timestamp, a boolean ``trusted`` column
(rows a reviewer checked by hand: the validation split), and 8% of the untrusted rows with
their label flipped (listed in loans_noisy_ids.json, which the pipeline never reads).

Also examples/data/loans_test.csv: 600 more applications from the same process, checked by hand
(no flipped labels), the curated test file the example config scores the gate on. Test rows
taken from loans.csv would carry its flipped labels, and a model trained on cleaned rows is
confidently "wrong" on exactly those rows: the gate would compare on the noise.

    python examples/make_data.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd


def _applications(rng: np.random.Generator, n: int) -> tuple[pd.DataFrame, np.ndarray]:
    """``n`` applications (features and timestamp) and their true decisions."""
    income = rng.lognormal(10.5, 0.5, n).round(0)
    debt_ratio = rng.beta(2, 5, n).round(3)
    years = rng.integers(0, 30, n)
    region = rng.choice(["north", "south", "east", "west"], n, p=[0.3, 0.3, 0.2, 0.2])
    purpose = rng.choice(["car", "home", "education", "business"], n)
    score = 0.8 * (np.log(income) - 10.5) / 0.5 - 3.0 * (debt_ratio - 0.28) / 0.16 * 0.5 + 0.05 * years
    score += np.where(region == "south", -0.3, 0.0) + rng.normal(0, 0.5, n)
    approved = np.where(score > 0, "approved", "declined")
    applied = pd.Timestamp("2026-01-01") + pd.to_timedelta(rng.integers(0, 300, n), unit="D")
    df = pd.DataFrame({"applied_at": applied.strftime("%Y-%m-%d"), "income": income, "debt_ratio": debt_ratio,
                       "years_employed": years, "region": region, "purpose": purpose})
    return df, approved


def main() -> None:
    out = Path(__file__).parent / "data"
    out.mkdir(exist_ok=True)
    rng = np.random.default_rng(7)
    n = 800
    df, approved = _applications(rng, n)
    trusted = rng.random(n) < 0.2
    noisy = (~trusted) & (rng.random(n) < 0.08)
    label = np.where(noisy, np.where(approved == "approved", "declined", "approved"), approved)
    df.insert(0, "application_id", [f"A{i:05d}" for i in range(n)])
    df["trusted"], df["decision"] = trusted, label
    df.to_csv(out / "loans.csv", index=False)
    (out / "loans_noisy_ids.json").write_text(json.dumps(sorted(df.loc[noisy, "application_id"]), indent=0) + "\n")

    test, decision = _applications(np.random.default_rng(8), 600)  # another stream: loans.csv stays as it was
    test.insert(0, "application_id", [f"T{i:05d}" for i in range(len(test))])
    test["trusted"], test["decision"] = True, decision
    test.to_csv(out / "loans_test.csv", index=False)


if __name__ == "__main__":
    main()
