"""Schemathesis hooks for infra/scripts/fuzz-api (loaded through SCHEMATHESIS_HOOKS).

One rule of the submission cannot be written in JSON Schema: `exploited_in_the_wild` counts
findings of any severity, so it is at most `critical + high + medium + low` (the document's
description says so, and the API answers 400 EVIDENCE_INCOMPLETE otherwise). Bodies that break it
are left out of every phase, so that a schema-valid body is one the API accepts; bodies whose
counts are not all integers (negative cases) are kept.
"""

import schemathesis


@schemathesis.hook
def filter_case(context, case):
    """Every phase (coverage, fuzzing, stateful) runs `filter_case`."""
    operation = context.operation
    body = case.body
    if operation is None or operation.method.upper() != "POST" or operation.path != "/v1/deployments":
        return True
    try:
        counts = body["evidence"]["vulnerabilities"]
        keys = ("critical", "high", "medium", "low", "exploited_in_the_wild")
        values = [counts[k] for k in keys]
    except (KeyError, TypeError):
        return True
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return True
    *findings, exploited = values
    return exploited <= sum(findings)
