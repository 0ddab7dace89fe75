"""ssr metrics, registered explicitly in BasicSR's ``METRIC_REGISTRY`` (BasicSR does not scan metric files)."""
