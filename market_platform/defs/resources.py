"""Dagster resources: thin, configured from environment variables, holding no domain logic."""

from __future__ import annotations

import dagster as dg
from sqlalchemy.engine import Engine

from market_platform import db, settings


class MarketDatabase(dg.ConfigurableResource):
    """The market database: a SQLAlchemy URL, SQLite by default, PostgreSQL in production."""

    url: str

    @property
    def engine(self) -> Engine:
        return db.get_engine(self.url)

    @property
    def safe_url(self) -> str:
        """The URL without its password, for logs and metadata."""
        return db.get_engine(self.url).url.render_as_string(hide_password=True)


def market_database_from_env() -> MarketDatabase:
    return MarketDatabase(url=settings.market_db_url())
