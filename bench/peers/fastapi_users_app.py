"""Reference app for ``make bench``: fastapi-users with its database access-token strategy.

Built the way fastapi-users' documentation configures it (SQLAlchemy, a ``User`` and an
``AccessToken`` table, ``DatabaseStrategy`` behind a ``BearerTransport``, the auth and users
routers), on MariaDB through SQLAlchemy's asyncio extension and aiomysql. What ``bench/run.py``
loads: ``POST /auth/login`` (form fields ``username``/``password``: one password check and an
``AccessToken`` row written) and ``GET /users/me`` with ``Authorization: Bearer <token>`` (the
token row, then the user, read from the database on every request).

It runs in a venv of its own, ``.venv/fastapi-users`` (``make bench`` builds it from
``requirements/bench-fastapi-users.txt``): fastapi-users-db-sqlalchemy 7 requires
SQLAlchemy < 2.1 and userhub's venv has 2.1, so they cannot share one.

Served by ``bench/run.py`` as ``uvicorn fastapi_users_app:app --workers 2``. Set up its tables
and the bench user first: ``python fastapi_users_app.py setup EMAIL`` (the password on stdin).
Environment: ``PEER_DATABASE_URL`` (``mysql+aiomysql://...``), ``PEER_SECRET``.
"""

# `make lint` checks this from userhub's venv, where none of the imports below is installed:
# mypy: allow-subclassing-any, allow-untyped-calls, disable-error-code="import-not-found"

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from collections.abc import AsyncGenerator
from typing import Any

from fastapi import Depends, FastAPI
from fastapi_users import BaseUserManager, FastAPIUsers, UUIDIDMixin, schemas
from fastapi_users.authentication import AuthenticationBackend, BearerTransport
from fastapi_users.authentication.strategy.db import DatabaseStrategy
from fastapi_users.db import SQLAlchemyBaseUserTableUUID, SQLAlchemyUserDatabase
from fastapi_users_db_sqlalchemy.access_token import (
    SQLAlchemyAccessTokenDatabase,
    SQLAlchemyBaseAccessTokenTableUUID,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

DATABASE_URL = os.environ.get("PEER_DATABASE_URL", "sqlite+aiosqlite:///fastapi_users.db")
SECRET = os.environ.get("PEER_SECRET", "change-me")
TOKEN_LIFETIME_SECONDS = 24 * 3600  # the docs show 3600; a full `make bench` runs longer


class Base(DeclarativeBase):
    pass


class User(SQLAlchemyBaseUserTableUUID, Base):
    pass


class AccessToken(SQLAlchemyBaseAccessTokenTableUUID, Base):
    pass


class UserRead(schemas.BaseUser[uuid.UUID]):
    pass


class UserCreate(schemas.BaseUserCreate):
    pass


class UserUpdate(schemas.BaseUserUpdate):
    pass


engine = create_async_engine(DATABASE_URL)
async_session_maker = async_sessionmaker(engine, expire_on_commit=False)


async def get_async_session() -> AsyncGenerator[AsyncSession, None]:
    async with async_session_maker() as session:
        yield session


async def get_user_db(
    session: AsyncSession = Depends(get_async_session),  # noqa: B008 (FastAPI's idiom)
) -> AsyncGenerator[SQLAlchemyUserDatabase[User, uuid.UUID], None]:
    yield SQLAlchemyUserDatabase(session, User)


async def get_access_token_db(
    session: AsyncSession = Depends(get_async_session),  # noqa: B008
) -> AsyncGenerator[SQLAlchemyAccessTokenDatabase[AccessToken], None]:
    yield SQLAlchemyAccessTokenDatabase(session, AccessToken)


class UserManager(UUIDIDMixin, BaseUserManager[User, uuid.UUID]):
    reset_password_token_secret = SECRET
    verification_token_secret = SECRET


async def get_user_manager(
    user_db: SQLAlchemyUserDatabase[User, uuid.UUID] = Depends(get_user_db),  # noqa: B008
) -> AsyncGenerator[UserManager, None]:
    yield UserManager(user_db)


def get_database_strategy(
    access_token_db: SQLAlchemyAccessTokenDatabase[AccessToken] = Depends(  # noqa: B008
        get_access_token_db
    ),
) -> DatabaseStrategy[User, uuid.UUID, AccessToken]:
    return DatabaseStrategy(access_token_db, lifetime_seconds=TOKEN_LIFETIME_SECONDS)


auth_backend = AuthenticationBackend(
    name="database",
    transport=BearerTransport(tokenUrl="auth/login"),
    get_strategy=get_database_strategy,
)
fastapi_users = FastAPIUsers[User, uuid.UUID](get_user_manager, [auth_backend])

app = FastAPI()
app.include_router(fastapi_users.get_auth_router(auth_backend), prefix="/auth", tags=["auth"])
app.include_router(
    fastapi_users.get_users_router(UserRead, UserUpdate), prefix="/users", tags=["users"]
)


@app.get("/health")
async def health() -> dict[str, Any]:
    """What ``bench/run.py`` polls until the server is up."""
    return {"status": "ok"}


async def setup(email: str, password: str) -> None:
    """The tables (fresh) and one user, made through the library's own user manager."""
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.drop_all)
        await connection.run_sync(Base.metadata.create_all)
    async with async_session_maker() as session:
        manager = UserManager(SQLAlchemyUserDatabase(session, User))
        await manager.create(UserCreate(email=email, password=password))
    await engine.dispose()


if __name__ == "__main__":
    if sys.argv[1:2] != ["setup"] or len(sys.argv) != 3:
        sys.exit("usage: fastapi_users_app.py setup EMAIL  (the password on stdin)")
    asyncio.run(setup(sys.argv[2], sys.stdin.readline().strip()))
