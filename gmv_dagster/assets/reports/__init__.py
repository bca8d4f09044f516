"""The report group: every method (GMValuator, its ablations, the baselines) judged by every criterion.

CRITERIA is the registry: a criterion is one file that declares its asset, its sections of the results page and its
headline columns (tables.Criterion); listing it here puts it into criterion_report, `gmv report`'s page and the
`criteria` job. The order is the page's.
"""

from . import (
    baselines,
    classes,
    consistency,
    diversity,
    efficiency,
    fidelity,
    group_lds,
    lds,
    ood,
    reasonableness,
)
from .report import criterion_report_asset

CRITERIA = [
    classes.CRITERION,
    reasonableness.CRITERION,
    ood.CRITERION,
    efficiency.CRITERION,
    fidelity.CRITERION,
    diversity.CRITERION,
    consistency.CRITERION,
    lds.CRITERION,
    group_lds.CRITERION,
]

REPORT_ASSETS = [
    baselines.method_valuations,
    *(criterion.asset for criterion in CRITERIA),
    criterion_report_asset(CRITERIA),
]
