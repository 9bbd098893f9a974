"""Persistence: SQLAlchemy 2 tables, engine/session factories. The request or task owns the transaction."""
