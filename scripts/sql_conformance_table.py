"""Print the SQL conformance table for docs/sql.md: each case of tests/sql/conformance_cases.py, run now, with its
result or the error that refuses it.

    .venv/bin/python scripts/sql_conformance_table.py > /tmp/table.md
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "sql"))

from conformance_cases import CASES, Unsupported

import lookalike
from lookalike.errors import SqlError


def main() -> None:
    ds = lookalike.open(Path(tempfile.mkdtemp()) / "conformance.duckdb")
    print("| statement | Lookalike |")
    print("|---|---|")
    for sql, expected in CASES:
        try:
            rows = ds.sql(sql)[-1].to_pylist()
            shown = ", ".join(str(next(iter(row.values())) if len(row) == 1 else row) for row in rows)
            cell = f"`{shown}`" if not isinstance(expected, Unsupported) else f"unexpected result `{shown}`"
        except SqlError as err:
            cell = "unsupported: " + err.message.replace("|", "\\|")
        print(f"| `{sql.replace('|', chr(92) + '|')}` | {cell} |")


if __name__ == "__main__":
    main()
