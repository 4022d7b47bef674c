"""Validates the OpenAPI document on stdin with openapi-spec-validator (an
independent implementation of the OpenAPI 3.1 schema); exit 1 with the
reason when it does not validate."""
import json
import sys

from openapi_spec_validator import validate

doc = json.load(sys.stdin)
try:
    validate(doc)
except Exception as e:  # the validator's own error names the place
    print(f"invalid OpenAPI document: {e}", file=sys.stderr)
    sys.exit(1)
print(f"valid OpenAPI {doc['openapi']}: {len(doc['paths'])} paths")
