"""The index of resources (SQLite by default)."""

from .sqlite import AttachmentRow, NewInstanceRecord, ResourceRow, SQLiteIndex, StoreOutcome

__all__ = ["AttachmentRow", "NewInstanceRecord", "ResourceRow", "SQLiteIndex", "StoreOutcome"]
