"""Runs the schemathesis CLI of this Python (the one scripts/setup.sh
installed it into): `python3 run_schemathesis.py run URL ...`."""
import sys

from schemathesis.cli import schemathesis

sys.argv[0] = "schemathesis"
sys.exit(schemathesis())
