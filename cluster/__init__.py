"""Where per-series work runs: in this process, or on a Dask distributed cluster (`--scheduler ADDRESS`).

A leftmost package, like `vocabulary`: registry, imaging and biomarkers all import it, and it
imports none of them, so the one-way data flow stays as it is.
"""
