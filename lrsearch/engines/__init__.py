"""Where a trial's NiftyNet training runs: the runtimes (TF 2 bridge, TF 1.15 environment), the
child process, probes, and what the child loads (lrsearch.engines.child).
"""
