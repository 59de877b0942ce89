"""Run Datadog's own OpenMetrics V2 check on instance configs and print what it submitted, as JSON.

Usage: python run_openmetrics_check.py < conf.d/openmetrics.d/chainops.yaml (JSON or YAML on stdin).
Runs with the datadog-checks-base virtualenv; the verify test starts it inside the test host's network
namespace (nsenter), so the endpoint URLs of the rendered config are used unchanged.
"""
import json
import sys

import yaml
from datadog_checks.base.checks.openmetrics.v2.base import OpenMetricsBaseCheckV2
from datadog_checks.base.stubs import aggregator

config = yaml.safe_load(sys.stdin)
results = []
for instance in config["instances"]:
    aggregator.reset()
    check = OpenMetricsBaseCheckV2("openmetrics", config.get("init_config") or {}, [instance])
    error = check.run()
    metrics = [
        {"name": name, "type": aggregator.METRIC_ENUM_MAP_REV[m.type], "value": m.value, "tags": sorted(m.tags)}
        for name, submitted in sorted(aggregator._metrics.items())
        for m in submitted
    ]
    service_checks = [
        {"name": name, "status": s.status, "tags": sorted(s.tags)}
        for name, submitted in sorted(aggregator._service_checks.items())
        for s in submitted
    ]
    results.append({"endpoint": instance.get("openmetrics_endpoint"), "error": error or None,
                    "metrics": metrics, "service_checks": service_checks})
json.dump(results, sys.stdout)
