"""Parses Prometheus text (stdin) with the prometheus-client library's
parser and prints every sample as JSON: [[name, {labels}, value], ...]."""
import json
import math
import sys

from prometheus_client.parser import text_string_to_metric_families

samples = []
for family in text_string_to_metric_families(sys.stdin.read()):
    for s in family.samples:
        value = s.value if math.isfinite(s.value) else str(s.value)
        samples.append([s.name, s.labels, value])
json.dump(samples, sys.stdout)
