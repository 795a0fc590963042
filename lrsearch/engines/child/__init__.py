"""What the NiftyNet child process loads: its entry point, the fork server it may be forked
from, the scheduled application, the TF 2 bridge and the runtime probe.

Everything here, and every lrsearch module it imports, runs under the tf1 runtime's Python 3.7
as well: standard library only (besides TensorFlow and NiftyNet themselves).
tests/test_layers.py checks it.
"""
