"""The report group: every method (GMValuator, its ablations, the baselines) judged by every criterion."""

from . import baselines, counterfactuals, criteria

REPORT_ASSETS = [
    baselines.method_valuations,
    criteria.criterion_classes,
    criteria.criterion_diversity,
    criteria.criterion_efficiency,
    counterfactuals.criterion_reasonableness,
    counterfactuals.criterion_ood,
    counterfactuals.criterion_fidelity,
    counterfactuals.criterion_consistency,
    counterfactuals.criterion_lds,
    criteria.criterion_report,
]
