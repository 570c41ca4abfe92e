#!/usr/bin/env python3
"""Parses Prometheus text exposition from stdin with the reference Python client's parser
(prometheus_client), independent of the Rust exporter, and prints it as JSON:

    {"families": {"<name>": {"type": "counter", "help": "...",
                              "samples": [{"name": "...", "labels": {...}, "value": 1.0}]}}}

Non-finite values are printed as strings ("+Inf", "-Inf", "NaN"). Exit status 3 when
prometheus_client is not installed, 2 when the input does not parse.
"""

import json
import math
import sys

try:
    from prometheus_client.parser import text_string_to_metric_families
except ImportError:
    sys.stderr.write("prometheus_client is not installed (python3 -m pip install prometheus_client)\n")
    sys.exit(3)


def number(v):
    if isinstance(v, float) and not math.isfinite(v):
        return "NaN" if math.isnan(v) else ("+Inf" if v > 0 else "-Inf")
    return v


def main():
    text = sys.stdin.read()
    families = {}
    try:
        for family in text_string_to_metric_families(text):
            if family.name in families:
                raise ValueError(f"family {family.name} appears twice")
            families[family.name] = {
                "type": family.type,
                "help": family.documentation,
                "samples": [
                    {"name": s.name, "labels": dict(s.labels), "value": number(s.value)}
                    for s in family.samples
                ],
            }
    except Exception as e:  # the parser raises ValueError (and others) on bad input
        sys.stderr.write(f"invalid exposition: {e}\n")
        sys.exit(2)
    json.dump({"families": families}, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
