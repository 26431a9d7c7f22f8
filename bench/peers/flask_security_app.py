"""Reference app for ``make bench``: Flask-Security-Too with its token authentication.

Built the way Flask-Security-Too's quickstart builds a Flask-SQLAlchemy application (the
``fsqla_v3`` model mixins, ``SQLAlchemyUserDatastore``, ``Security``), on MariaDB through
PyMySQL, with the settings its docs give an API that authenticates with tokens. What
``bench/run.py`` loads:

- ``POST /login?include_auth_token`` with JSON ``{"email", "password"}``: one password check
  and an authentication token issued (``response.user.authentication_token``);
- ``GET /api/me`` with the ``Authentication-Token`` header: a view behind
  ``@auth_required("token")``, which verifies the token's signature and reads the user from the
  database on every request, then answers the user as JSON.

It shares userhub's dev venv (its requirements fit userhub's pins; ``bench`` dependency group).
Served by ``bench/run.py`` as ``granian --interface wsgi --workers 2 --blocking-threads 4
flask_security_app:app``. Set up its tables and the bench user first:
``python flask_security_app.py setup EMAIL`` (the password on stdin).
Environment: ``PEER_DATABASE_URL`` (``mysql+pymysql://...``), ``PEER_SECRET``.
"""

from __future__ import annotations

import os
import sys
from datetime import timedelta
from typing import Any

from flask import Flask
from flask_security import Security, SQLAlchemyUserDatastore, auth_required, current_user
from flask_security.models import fsqla_v3 as fsqla
from flask_sqlalchemy import SQLAlchemy

app = Flask(__name__)
app.config.update(
    SECRET_KEY=os.environ.get("PEER_SECRET", "change-me"),
    SECURITY_PASSWORD_SALT=os.environ.get("PEER_SECRET", "change-me"),
    SQLALCHEMY_DATABASE_URI=os.environ.get("PEER_DATABASE_URL", "sqlite:///flask_security.db"),
    # The docs' pre-ping, so a connection MariaDB closed is not handed out.
    SQLALCHEMY_ENGINE_OPTIONS={"pool_pre_ping": True},
    # A JSON API whose clients authenticate with a token header: no CSRF token to fetch first.
    WTF_CSRF_ENABLED=False,
    # The default is 15 minutes; a full `make bench` runs longer than that.
    SECURITY_TOKEN_MAX_AGE=timedelta(days=1),
)
db = SQLAlchemy(app)
fsqla.FsModels.set_db_info(db)  # type: ignore[attr-defined,no-untyped-call]


class Role(db.Model, fsqla.FsRoleMixin):  # type: ignore[name-defined,misc]
    pass


class User(db.Model, fsqla.FsUserMixin):  # type: ignore[name-defined,misc]
    pass


user_datastore = SQLAlchemyUserDatastore(db, User, Role)
app.security = Security(app, user_datastore)  # type: ignore[attr-defined]


@app.get("/api/me")
@auth_required("token")
def me() -> dict[str, Any]:
    """The current user, the ``GET /api/v1/users/me`` of this app."""
    return {
        "id": current_user.id,
        "email": current_user.email,
        "active": current_user.active,
        "confirmed_at": current_user.confirmed_at,
    }


@app.get("/health")
def health() -> dict[str, str]:
    """What ``bench/run.py`` polls until the server is up."""
    return {"status": "ok"}


def setup(email: str, password: str) -> None:
    """The tables (fresh) and one user, made through the library's datastore and hasher."""
    from flask_security import hash_password

    with app.app_context():
        db.drop_all()
        db.create_all()
        user_datastore.create_user(email=email, password=hash_password(password))
        db.session.commit()


if __name__ == "__main__":
    if sys.argv[1:2] != ["setup"] or len(sys.argv) != 3:
        sys.exit("usage: flask_security_app.py setup EMAIL  (the password on stdin)")
    setup(sys.argv[2], sys.stdin.readline().strip())
