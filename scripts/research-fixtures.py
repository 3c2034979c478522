#!/usr/bin/env python3
"""Writes the fixtures ketcare-research's tests check against: an independent fit of the same
data by statsmodels (logistic regression) and lifelines (Kaplan-Meier with its log(-log)
confidence interval and median; Cox proportional hazards with Efron ties).

    python3 -m pip install statsmodels lifelines
    python3 scripts/research-fixtures.py crates/ketcare-research/tests/fixtures/independent.json

The data are drawn from a fixed seed, so the file is the same on every run of the same versions.
"""
import json
import sys

import numpy as np
import statsmodels.api as sm
import lifelines
from lifelines import CoxPHFitter, KaplanMeierFitter

rng = np.random.default_rng(20261206)
n = 240
x1 = rng.integers(0, 2, n).astype(float)          # a binary covariate
x2 = np.round(rng.normal(15.0, 5.0, n), 1)          # a continuous covariate (a baseline score)
eta = -2.0 + 0.9 * x1 + 0.12 * x2
y = (rng.random(n) < 1.0 / (1.0 + np.exp(-eta))).astype(float)

X = sm.add_constant(np.column_stack([x1, x2]))
logit = sm.Logit(y, X).fit(disp=0, tol=1e-12, maxiter=200)

# Survival: whole days (ties), administrative censoring at 180 days plus random drop-out.
hazard = 0.01 * np.exp(0.7 * x1 - 0.04 * x2)
t_event = np.ceil(rng.exponential(1.0 / hazard))
t_drop = np.ceil(rng.uniform(20, 400, n))
time = np.minimum(np.minimum(t_event, t_drop), 180.0)
event = ((t_event <= t_drop) & (t_event <= 180.0)).astype(int)

kmf = KaplanMeierFitter().fit(time, event, alpha=0.05)
sf = kmf.survival_function_
ci = kmf.confidence_interval_
km_rows = [
    {"t": float(t), "s": float(sf.iloc[i, 0]), "lower": float(ci.iloc[i, 0]), "upper": float(ci.iloc[i, 1])}
    for i, t in enumerate(sf.index)
]
median_ci = lifelines.utils.median_survival_times(ci)

import pandas as pd
df = pd.DataFrame({"time": time, "event": event, "x1": x1, "x2": x2})
cph = CoxPHFitter().fit(df, duration_col="time", event_col="event")  # Efron ties
summ = cph.summary

out = {
    "generated_by": f"scripts/research-fixtures.py with statsmodels {sm.__version__ if hasattr(sm, '__version__') else __import__('statsmodels').__version__}, lifelines {lifelines.__version__}, numpy {np.__version__}",
    "x1": x1.tolist(),
    "x2": x2.tolist(),
    "y": y.tolist(),
    "time": time.tolist(),
    "event": event.tolist(),
    "logistic": {
        "coef": logit.params.tolist(),
        "se": logit.bse.tolist(),
        "p": logit.pvalues.tolist(),
        "llf": float(logit.llf),
    },
    "km": {
        "rows": km_rows,
        "median": None if np.isinf(kmf.median_survival_time_) else float(kmf.median_survival_time_),
        "median_lower": None if np.isinf(median_ci.iloc[0, 0]) else float(median_ci.iloc[0, 0]),
        "median_upper": None if np.isinf(median_ci.iloc[0, 1]) else float(median_ci.iloc[0, 1]),
    },
    "cox": {
        "coef": summ["coef"].tolist(),
        "se": summ["se(coef)"].tolist(),
        "p": summ["p"].tolist(),
        "loglik": float(cph.log_likelihood_),
    },
}
with open(sys.argv[1], "w") as f:
    json.dump(out, f, indent=1)
    f.write("\n")
print("events", int(event.sum()), "of", n, "; responders", int(y.sum()))
