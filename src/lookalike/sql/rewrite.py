"""Prepare a parsed query for DuckDB: check its table names, compute its table functions, drop project names.

``INFORMATION_SCHEMA`` views and the people views (``lookalike_people``...) are replaced by their rows first.

Table functions (``ML.GENERATE_EMBEDDING``, ``VECTOR_SEARCH``) may appear anywhere a table may, and nest
(the demo's ``VECTOR_SEARCH`` takes an ``ML.GENERATE_EMBEDDING`` as its query). :func:`materialise` computes
the innermost calls first: their relation arguments are plain SQL by then, so DuckDB runs them; the result is
registered as a temporary Arrow view and the call in the tree is replaced by a reference to it. When no call
is left, the rest of the statement is ordinary SQL for DuckDB.
"""

from __future__ import annotations

import pyarrow as pa
from sqlglot import exp

from lookalike.errors import SqlNotSupported
from lookalike.sql.catalog_views import replace_views
from lookalike.sql.context import TEMP_PREFIX, Context
from lookalike.sql.functions import rewrite_functions
from lookalike.sql.names import name_of, relations
from lookalike.sql.people import replace_people
from lookalike.sql.registry import TABLE_FUNCTIONS

_FUNCTION_NAMES: dict[type[exp.Expr], str] = {
    exp.GenerateEmbedding: "ML.GENERATE_EMBEDDING",
    exp.VectorSearch: "VECTOR_SEARCH",
}


def function_name(node: exp.Expr) -> str:
    return _FUNCTION_NAMES.get(type(node), type(node).__name__.upper())


def prepare(ctx: Context, tree: exp.Expr) -> exp.Expr:
    """Check, rewrite and materialise ``tree`` in place (see the module docstring); return it."""
    check_ml_functions(ctx, tree)
    rewrite_functions(ctx, tree)
    replace_views(ctx, tree)
    replace_people(ctx, tree)
    check_tables(ctx, tree)
    drop_projects(tree)
    qualify(ctx, tree)
    materialise(ctx, tree)
    return tree


def check_ml_functions(ctx: Context, tree: exp.Expr) -> None:
    """Refuse BigQuery ML functions other than the ones registered (ML.PREDICT, ML.EVALUATE...)."""
    for table in tree.find_all(exp.Table):
        inner = table.this
        db = table.args.get("db")
        is_ml = isinstance(inner, exp.Func) and db is not None and str(db.name).upper() == "ML"
        if is_ml and type(inner) not in TABLE_FUNCTIONS:
            fn = inner.sql_name() if hasattr(inner, "sql_name") else type(inner).__name__
            raise ctx.error(
                f"ML.{fn} is not supported",
                at=table,
                hint="Lookalike supports ML.GENERATE_EMBEDDING (and VECTOR_SEARCH for search)",
                cls=SqlNotSupported,
            )


def _targets(tree: exp.Expr) -> set[int]:
    """ids of the table nodes a statement creates or may drop (they need not exist yet)."""
    out: set[int] = set()
    if isinstance(tree, exp.Create):
        target = tree.this
        if isinstance(target, exp.Schema):
            target = target.this
        if target is not None:
            out.add(id(target))
    if isinstance(tree, exp.Drop):
        kind = str(tree.args.get("kind") or "").upper()
        if tree.args.get("exists") or kind not in ("TABLE", "VIEW"):
            out.update(id(t) for t in tree.find_all(exp.Table))
    return out


def check_tables(ctx: Context, tree: exp.Expr) -> None:
    """Raise a did-you-mean error for the first table reference that names no existing table or view."""
    existing = relations(ctx.con, internal=True)
    ctes = {cte.alias_or_name.lower() for cte in tree.find_all(exp.CTE)}
    aliases = {a.name.lower() for a in tree.find_all(exp.TableAlias) if a.name}
    skip = _targets(tree)
    for table in tree.find_all(exp.Table):
        if id(table) in skip or not isinstance(table.this, exp.Identifier):
            continue
        if isinstance(table.parent, exp.GenerateEmbedding) and table.arg_key == "this":
            continue  # MODEL name, checked by ML.GENERATE_EMBEDDING
        name = name_of(table)
        has_db = table.args.get("db") is not None
        if not has_db and name.name.lower() in ctes:
            continue
        if "information_schema" in name.key or name.name.lower().startswith(TEMP_PREFIX):
            continue
        if has_db and name.schema.lower() in aliases | ctes:
            continue  # a path through an alias, not a schema
        if name.key not in existing:
            raise ctx.missing_table(table)


def drop_projects(tree: exp.Expr) -> None:
    """``project.dataset.table`` -> ``dataset.table``: a dataset file has no projects."""
    for table in tree.find_all(exp.Table):
        if table.args.get("catalog") is not None and isinstance(table.this, exp.Identifier):
            table.set("catalog", None)


def qualify(ctx: Context, tree: exp.Expr) -> None:
    """Add the database name to ``schema.table`` where the schema has the database's name.

    DuckDB names the database after the file (``face_search.duckdb`` -> ``face_search``) and cannot tell
    it from a schema of the same name; ``face_search.face_search.faces`` is unambiguous.
    """
    catalog = ctx.catalog.lower()
    for table in tree.find_all(exp.Table):
        db = table.args.get("db")
        if isinstance(db, exp.Identifier) and db.name.lower() == catalog and table.args.get("catalog") is None:
            table.set("catalog", exp.to_identifier(ctx.catalog, quoted=True))


def materialise(ctx: Context, tree: exp.Expr) -> None:
    """Compute every table-function call in ``tree``, innermost first, replacing each by its result."""
    types = tuple(TABLE_FUNCTIONS)
    while True:
        calls = list(tree.find_all(*types, bfs=False))
        if not calls:
            return
        leaves = [c for c in calls if not any(d is not c for d in c.find_all(*types))]
        # A call inside a CTE sees the CTEs before it: compute those first.
        ready = [c for c in leaves if not any(cte.find(*types) for cte in visible_ctes(c))]
        call = (ready or leaves)[0]
        holder = call.parent
        if not (isinstance(holder, exp.Table) and holder.this is call):
            raise ctx.error(
                f"{function_name(call)} is a table function: use it where a table goes (FROM, JOIN)", at=call
            )
        fn = TABLE_FUNCTIONS[type(call)]

        def evaluate(arg: exp.Expr, at: exp.Expr = call) -> pa.Table:
            return ctx.query(relation_query(ctx, arg, at))

        result = fn(ctx, call, evaluate)
        name = ctx.register(result)
        holder.set("this", exp.to_identifier(name))
        holder.set("db", None)
        holder.set("catalog", None)


def relation_query(ctx: Context, arg: exp.Expr, at: exp.Expr) -> exp.Query:
    """A query for a relation argument (``TABLE name`` or ``(subquery)``) that sees the CTEs around ``at``."""
    if isinstance(arg, exp.Table):
        query: exp.Query = exp.select("*").from_(arg.copy())
    elif isinstance(arg, exp.Subquery) and isinstance(arg.this, exp.Query):
        query = arg.this.copy()
    elif isinstance(arg, exp.Query):
        query = arg.copy()
    else:
        raise ctx.error("expected TABLE name or a (subquery) here", at=arg)
    ctes = visible_ctes(at)
    if ctes:
        own = query.args.get("with_")
        mine = [c.copy() for c in ctes]
        if isinstance(own, exp.With):
            own.set("expressions", mine + list(own.expressions))
        else:
            query.set("with_", exp.With(expressions=mine))
    return query


def visible_ctes(node: exp.Expr) -> list[exp.CTE]:
    """The CTEs a node can refer to: those of enclosing WITH clauses (in a CTE, only the earlier ones)."""
    groups: list[list[exp.CTE]] = []  # innermost first
    child, parent = node, node.parent
    while parent is not None:
        if isinstance(parent, exp.With):
            own = list(parent.expressions)
            index = next((i for i, c in enumerate(own) if c is child), len(own))
            groups.append(own[:index])
        else:
            with_ = parent.args.get("with_")
            if isinstance(with_, exp.With) and with_ is not child:
                groups.append(list(with_.expressions))
        child, parent = parent, parent.parent
    ordered = [cte for group in reversed(groups) for cte in group]
    seen: set[str] = set()
    kept: list[exp.CTE] = []
    for cte in reversed(ordered):  # an inner CTE hides an outer one of the same name
        key = cte.alias_or_name.lower()
        if key not in seen:
            seen.add(key)
            kept.append(cte)
    return list(reversed(kept))
