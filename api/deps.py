"""The api's dependencies as ``Annotated`` aliases; everything comes from ``app.state``.

Why ``app.state``: the lifespan creates each client once per process (no clients at import
time), and tests can build an app around their own engine or Temporal client.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

import httpx
from fastapi import Depends, Request
from sqlalchemy import Engine
from sqlmodel import Session
from temporalio.client import Client

from api.auth import KeyCache, KeyPolicy, authenticate_key, require_admin
from api.settings import Settings


def get_settings_dep(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_engine(request: Request) -> Engine:
    engine: Engine = request.app.state.engine
    return engine


def get_session(engine: Annotated[Engine, Depends(get_engine)]) -> Iterator[Session]:
    """One session per request (sync: FastAPI runs it in its thread pool)."""
    with Session(engine) as session:
        yield session


def get_temporal(request: Request) -> Client:
    client: Client = request.app.state.temporal
    return client


def get_http(request: Request) -> httpx.AsyncClient:
    http: httpx.AsyncClient = request.app.state.http
    return http


def get_key_cache(request: Request) -> KeyCache:
    cache: KeyCache = request.app.state.key_cache
    return cache


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
EngineDep = Annotated[Engine, Depends(get_engine)]
SessionDep = Annotated[Session, Depends(get_session)]
TemporalClientDep = Annotated[Client, Depends(get_temporal)]
HttpClientDep = Annotated[httpx.AsyncClient, Depends(get_http)]
KeyCacheDep = Annotated[KeyCache, Depends(get_key_cache)]
AdminDep = Annotated[None, Depends(require_admin)]
VirtualKeyDep = Annotated[KeyPolicy, Depends(authenticate_key)]
