"""The in-cell probe: the code that runs inside each environment.

Constraints (tested on Python 3.7 and on the host Python): Python 3.7 syntax, and only
the standard library, numpy, Pillow and the framework under test (plus nvidia-ml-py when
present). The host talks to it through two files: a spec JSON in, a result JSON out.

PROBE_VERSION changes when a change to the probe can change a result; it is part of
every cell id. The probe's source hash is recorded in each result as well, so a result
always says exactly which probe produced it.
"""

PROBE_VERSION = 1
RESULT_SCHEMA_VERSION = 1
