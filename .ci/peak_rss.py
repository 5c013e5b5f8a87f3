"""Runs a command and prints its peak resident set size in MiB (the child's ru_maxrss).

    python3 .ci/peak_rss.py nnlens evaluate ...

Exits with the command's status.
"""
import resource
import subprocess
import sys

status = subprocess.run(sys.argv[1:], stdout=subprocess.PIPE).returncode
peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
print(f"{peak_kib / 1024:.1f}")
sys.exit(status)
