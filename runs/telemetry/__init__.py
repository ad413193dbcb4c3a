"""Telemetry: log context, JSON logs, OpenTelemetry spans and Prometheus metrics.

At the bottom of the layers (stdlib, OpenTelemetry, prometheus-client and the models only), so
every layer can mark what it does with a one-line hook; no exporter I/O ever happens on the
caller's path (spans leave through a ``BatchSpanProcessor``'s thread).
"""
