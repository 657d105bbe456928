"""Metrics: FID, KID, precision/recall, IS, PPL, bits/dim and cost, with our own detectors (no torchvision).

`compute(["fid50k_full", "kid50k_full"], G=G, dataset=ds, num_gen=10_000)` -> {'fid50k_full': ..., ...};
`compute_records` adds timing, counts, detector and warnings per metric; `list_metrics()` names them all.
`cost` (parameters, MACs, speed, memory) is shared with `bench`.
"""
from .metric_main import (Metric, MetricOptions, MetricRecord, compute, compute_records, get_metric, list_metrics,
                          register_metric, write_jsonl)
from .weights import MissingWeights
from . import definitions  # noqa: E402,F401  (registers the metrics)

__all__ = ["Metric", "MetricOptions", "MetricRecord", "MissingWeights", "compute", "compute_records", "get_metric",
           "list_metrics", "register_metric", "write_jsonl"]
