"""Extension objects, created unbound; ``create_app`` binds them with ``init_app``.

This module imports nothing from the rest of the package, so any module may import it.
"""

from __future__ import annotations

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

# Stable constraint names, so Alembic revisions read the same on SQLite and MySQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
RATE_LIMIT_KEY_PREFIX = "userhub"  # every key userhub writes to a shared Redis starts with it

# Counts by the client's address (behind a proxy, as USERHUB_TRUSTED_PROXIES lets ProxyFix read it).
# Moving windows: a limit of N per period holds for every period, not per calendar slot.
# Storage errors are swallowed: an unreachable Redis must not lock every user out.
limiter = Limiter(
    key_func=get_remote_address,
    key_prefix=RATE_LIMIT_KEY_PREFIX,
    strategy="moving-window",
    swallow_errors=True,
)
