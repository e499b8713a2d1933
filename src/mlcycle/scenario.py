"""The demo scenario: a churn table with drifted production periods (docs/scenario.md).

API: :func:`make_scenario`, :data:`SCENARIO_DRIFT`, :data:`SCENARIO_TARGET`,
:data:`SCENARIO_TIME`, :data:`Period`.

Re-exported by :mod:`mlcycle.data`, where these names were first published.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd

from mlcycle.errors import DataError

Period = Literal["reference", "covariate", "concept", "both"]

#: Columns whose distribution changes in each scenario period (see docs/scenario.md).
SCENARIO_DRIFT: dict[str, tuple[str, ...]] = {
    "reference": (),
    "covariate": ("monthly_charges", "data_usage_gb", "region"),
    "concept": (),
    "both": ("monthly_charges", "data_usage_gb", "region"),
}
SCENARIO_TARGET = "churned"
SCENARIO_TIME = "event_time"


def make_scenario(
    n_rows: int = 20_000,
    period: Period = "reference",
    seed: int = 0,
    start: str = "2026-01-01",
    days: int = 30,
) -> pd.DataFrame:
    """Generate the demo's subscription-churn table.

    Features: ``age``, ``tenure_months``, ``monthly_charges``, ``data_usage_gb``,
    ``support_calls`` (numeric; ``monthly_charges`` has ~2 % missing values), ``contract``,
    ``region``, ``payment_method`` (categorical), ``event_time`` (timestamp) and the label
    ``churned`` (0/1).

    Periods (documented in ``docs/scenario.md``):

    - ``reference`` — the training distribution.
    - ``covariate`` — a price rise: ``monthly_charges`` +30 on average, ``data_usage_gb``
      doubles, and the ``region`` mix shifts to ``east``; the label still follows the
      reference rule. Other columns are untouched.
    - ``concept`` — features as in ``reference``, but churn now follows support calls much more
      and contract length much less (concept drift: only quality drops).
    - ``both`` — the covariate shift and the concept change together.

    The same arguments always give the same frame.
    """
    if n_rows <= 0:
        raise DataError("n_rows must be positive")
    if period not in SCENARIO_DRIFT:
        raise DataError(f"unknown scenario period '{period}'; use one of {sorted(SCENARIO_DRIFT)}")
    offset = {"reference": 0, "covariate": 1, "concept": 2, "both": 3}[period]
    rng = np.random.default_rng([seed, offset])
    covariate = period in ("covariate", "both")
    concept = period in ("concept", "both")

    age = rng.normal(42, 12, n_rows).clip(18, 90).round()
    tenure = rng.gamma(2.0, 14.0, n_rows).clip(1, 72).round()
    contract = rng.choice(["month-to-month", "one-year", "two-year"], n_rows, p=[0.55, 0.25, 0.20])
    region_p = [0.15, 0.2, 0.5, 0.15] if covariate else [0.3, 0.25, 0.2, 0.25]
    region = rng.choice(["north", "south", "east", "west"], n_rows, p=region_p)
    payment = rng.choice(
        ["card", "bank-transfer", "electronic-check", "mailed-check"],
        n_rows,
        p=[0.35, 0.25, 0.3, 0.1],
    )
    charges = rng.normal(65, 18, n_rows) + (30 if covariate else 0)
    charges = charges.clip(15, 200).round(2)
    usage = rng.lognormal(2.3, 0.6, n_rows) * (2.0 if covariate else 1.0)
    calls = rng.poisson(1.2 + (tenure < 6) * 0.8, n_rows)

    contract_effect = np.select(
        [contract == "month-to-month", contract == "one-year"], [1.2, 0.0], -1.3
    )
    pay_effect = np.where(payment == "electronic-check", 0.5, 0.0)
    if concept:
        logit = (
            -2.0
            + 0.3 * contract_effect
            + 1.1 * (calls - 1.2)
            - 0.02 * (tenure - 24)
            + 0.01 * (charges - 65)
        )
    else:
        # The reference rule, applied to the (possibly shifted) features.
        logit = (
            -1.4
            + contract_effect
            + 0.35 * (calls - 1.2)
            - 0.035 * (tenure - 24)
            + 0.025 * (charges - 65)
            + pay_effect
            - 0.01 * (age - 42)
        )
    churned = (rng.random(n_rows) < 1 / (1 + np.exp(-logit))).astype(int)

    charges_with_missing = charges.copy()
    charges_with_missing[rng.random(n_rows) < 0.02] = np.nan
    t0 = pd.Timestamp(start)
    seconds = np.sort(rng.integers(0, days * 86_400, n_rows))
    return pd.DataFrame(
        {
            "event_time": t0 + pd.to_timedelta(seconds, unit="s"),
            "age": age.astype(int),
            "tenure_months": tenure.astype(int),
            "monthly_charges": charges_with_missing,
            "data_usage_gb": usage.round(3),
            "support_calls": calls.astype(int),
            "contract": contract,
            "region": region,
            "payment_method": payment,
            SCENARIO_TARGET: churned,
        }
    )
