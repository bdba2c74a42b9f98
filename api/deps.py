"""Dependencies of the routes, as `Annotated` aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer
from temporalio.client import Client

from api.auth import KeyRing, Principal
from api.errors import UnauthorizedError
from docflow.config import Settings
from storage.objects import ObjectStore


def get_settings_dep(request: Request) -> Settings:
    """The app's settings."""
    settings: Settings = request.app.state.settings
    return settings


def get_store(request: Request) -> ObjectStore:
    """The object store."""
    store: ObjectStore = request.app.state.store
    return store


def get_temporal(request: Request) -> Client:
    """The Temporal client."""
    client: Client = request.app.state.temporal
    return client


def _keyring(request: Request) -> KeyRing:
    settings: Settings = request.app.state.settings
    path = settings.keys_file
    mtime = path.stat().st_mtime if path.exists() else 0.0
    # Reload when the key file changes, so `docflow keys create` needs no restart.
    if getattr(request.app.state, "keys_mtime", None) != mtime:
        request.app.state.keyring = KeyRing.load(path)
        request.app.state.keys_mtime = mtime
    ring: KeyRing = request.app.state.keyring
    return ring


# Declared as security schemes so the OpenAPI docs offer "Authorize"; errors are ours (auto_error off).
_api_key_header = APIKeyHeader(name="Api-Key", auto_error=False, description="An API key of your project")
_bearer = HTTPBearer(auto_error=False, description="The same API key, as a bearer token")


def get_principal(
    request: Request,
    api_key: Annotated[str | None, Security(_api_key_header)] = None,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(_bearer)] = None,
) -> Principal:
    """The caller, from `Api-Key` or `Authorization: Bearer`; 401 otherwise."""
    key = api_key or (bearer.credentials if bearer is not None else None)
    if not key:
        raise UnauthorizedError("missing API key: send it in the Api-Key header or as Authorization: Bearer")
    principal = _keyring(request).authenticate(key)
    if principal is None:
        raise UnauthorizedError("invalid API key")
    return principal


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
StoreDep = Annotated[ObjectStore, Depends(get_store)]
TemporalDep = Annotated[Client, Depends(get_temporal)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
