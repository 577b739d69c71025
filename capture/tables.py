"""Tables for people: rich Tables as wide as their titles, so that a title never wraps mid-phrase."""
from __future__ import annotations

from rich.table import Table


def titled_table(title: str, *columns: str, **column_options) -> Table:
    """A Table titled ``title`` with these column headers (``column_options`` apply to every column)."""
    table = Table(title=title, min_width=len(title))
    for column in columns:
        table.add_column(column, **column_options)
    return table
