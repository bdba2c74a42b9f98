"""Public id prefixes (Retab's, NOTES.md §10) and id makers."""

from __future__ import annotations

import hashlib
import json
import secrets
from typing import Any

WORKFLOW = "wf_"
VERSION = "ver_"
RUN = "run_"
BLOCK = "blk_"
EDGE = "edge_"
FILE = "file_"
PROJECT = "proj_"
EXECUTION = "wfsim_"  # a block execution (rerun); docflow.keys files its records apart from runs'
WORKFLOW_TEST = "wfnodetest_"  # a workflow (block) test

ARTIFACT_PREFIXES = {
    "extraction": "extr_",
    "parse": "prs_",
    "conditional_evaluation": "cond_",
    "api_call_invocation": "apic_",
    "function_invocation": "fninv_",
    "classification": "clss_",
    "split": "splt_",
    "edit": "edt_",
    "partition": "part_",
    "review_trigger_evaluation": "rte_",
    "while_loop_termination": "wlt_",
}


def new_id(prefix: str) -> str:
    """A random id with a public prefix."""
    return prefix + secrets.token_hex(12)


def canonical_json(value: Any) -> bytes:
    """Canonical JSON: sorted keys, no spaces, UTF-8; the input of every fingerprint."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def fingerprint(value: Any) -> str:
    """sha256 hex of the canonical JSON of a value."""
    return hashlib.sha256(canonical_json(value)).hexdigest()


def derived_id(prefix: str, *parts: str, length: int = 32) -> str:
    """A deterministic id from its parts (idempotency keys, content addresses)."""
    return prefix + hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:length]
