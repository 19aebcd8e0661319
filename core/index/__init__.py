"""The index of resources (SQLite by default)."""

from .records import AttachmentRow, NewInstanceRecord, ResourceRow, StoreOutcome
from .sqlite import SQLiteIndex

__all__ = ["AttachmentRow", "NewInstanceRecord", "ResourceRow", "SQLiteIndex", "StoreOutcome"]
