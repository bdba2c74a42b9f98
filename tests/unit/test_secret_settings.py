"""DOCFLOW_SECRETS is keyed by project: parsed from the environment's JSON, each value long enough to redact."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from docflow.config import Settings


def test_secrets_are_read_per_project_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    secrets = {"proj_a": {"TOKEN": "a-secret-value"}, "proj_b": {"TOKEN": "b-secret-value"}}
    monkeypatch.setenv("DOCFLOW_SECRETS", json.dumps(secrets))
    assert Settings().secret_values == secrets


def test_a_flat_object_of_names_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """The old, shared shape {NAME: value} would give every project every secret: it no longer parses."""
    monkeypatch.setenv("DOCFLOW_SECRETS", json.dumps({"TOKEN": "a-secret-value"}))
    with pytest.raises(ValidationError, match="secrets"):
        Settings()


def test_a_short_secret_is_refused_naming_project_and_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCFLOW_SECRETS", json.dumps({"proj_a": {"OK": "long-enough", "PIN": "1234"}}))
    with pytest.raises(ValidationError, match=r"proj_a\.PIN"):
        Settings()
