"""Metrics. `cost` (parameters, MACs, speed, memory) is shared by `bench` and `evaluate`."""
