"""The benchmark harness of ``spikewatch bench``: a realistic stream, the machine's own ceilings,
the real worker measured from outside, and the BENCHMARKS.md report.

It drives the worker only as an operator would (a subprocess, its environment, Kafka, /metrics),
adding nothing but a SQL statement counter (``bench.worker_probe``); it never imports ``worker`` or
``api``, so what it measures is what users run.
"""
