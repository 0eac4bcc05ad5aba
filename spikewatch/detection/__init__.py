"""Detection quality: traces of one issue's bucket counts, replayed through the worker's own spike
rule (``replay``), and a labelled suite to score the detectors on (``suite``, ``evaluate``)."""
