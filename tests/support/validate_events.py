#!/usr/bin/env python3
"""validate_events.py SCHEMA EVENTS.jsonl - checks the schema against the JSON Schema
meta-schema (Draft 2020-12), then every line of EVENTS against the schema. Prints the
first error of each invalid line and exits 1 if any line is invalid, 2 on bad usage."""
import json
import sys

import jsonschema


def main(argv):
    if len(argv) != 3:
        print("usage: validate_events.py SCHEMA EVENTS.jsonl", file=sys.stderr)
        return 2
    with open(argv[1], encoding="utf-8") as f:
        schema = json.load(f)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    bad = 0
    count = 0
    with open(argv[2], encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            count += 1
            try:
                event = json.loads(line)
            except ValueError as e:
                print(f"line {number}: not JSON: {e}", file=sys.stderr)
                bad += 1
                continue
            errors = sorted(validator.iter_errors(event), key=lambda e: list(e.path))
            if errors:
                bad += 1
                if bad <= 5:
                    print(f"line {number}: {errors[0].message} at {list(errors[0].path)}",
                          file=sys.stderr)
    print(f"validate_events: {count - bad} of {count} events valid", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
