"""Models: ``CREATE [OR REPLACE] MODEL name [REMOTE WITH CONNECTION c] OPTIONS(ENDPOINT = '...')``.

In BigQuery the model is a remote Vertex AI endpoint. Here ENDPOINT names a face model of Lookalike's
registry (``lookalike models`` lists them); ``'default'`` is the default face model. The model runs on this
machine; the connection is recorded and not needed. Models live in ``lookalike_sql_models``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlglot import exp

from lookalike.errors import SqlNotSupported, UnknownModel
from lookalike.faces.registry import DEFAULT_MODEL, is_installed, list_cards, resolve_name
from lookalike.sql.context import Context, Outcome
from lookalike.sql.names import Name, did_you_mean, from_key, name_of
from lookalike.sql.parse import ParsedStatement, create_options
from lookalike.sql.registry import statement
from lookalike.sql.values import constant

#: Words that give away a Vertex AI (or other remote) endpoint rather than a local model name.
_REMOTE_MARKERS = ("@", "/", "embedding", "gemini", "text-", "textembedding", "multimodal", "http")


@dataclass(frozen=True, slots=True)
class SqlModel:
    """A model made with ``CREATE MODEL``: its name, the ENDPOINT as written, the registry model it uses."""

    name: Name
    endpoint: str
    model: str
    connection: str | None


def local_models() -> str:
    """The registry's models, for hints: ``'default' (fr-feature, 512-d), fr-feature (512-d), ...``."""
    cards = list_cards()
    listing = ", ".join(f"{c.name} ({c.dim}-d)" for c in cards)
    default = next(c for c in cards if c.name == DEFAULT_MODEL)
    return f"ENDPOINT = 'default' ({default.name}, {default.dim}-d) or one of: {listing}"


def resolve_endpoint(ctx: Context, endpoint: str, at: int | exp.Expr | None) -> str:
    """The registry model an ENDPOINT names; an error listing the local models for anything else."""
    try:
        return resolve_name(endpoint)
    except UnknownModel:
        pass
    lowered = endpoint.lower()
    if any(marker in lowered for marker in _REMOTE_MARKERS):
        raise ctx.error(
            f"ENDPOINT {endpoint!r} is a remote (Vertex AI) model; Lookalike runs face models on this machine",
            at=at,
            hint="use " + local_models(),
            cls=SqlNotSupported,
        )
    raise ctx.error(f"unknown model ENDPOINT {endpoint!r}", at=at, hint="use " + local_models())


def _from_row(row: tuple[object, ...]) -> SqlModel:
    schema, _, name = str(row[1]).partition(".")
    return SqlModel(Name(schema, name), str(row[2]), str(row[3]), row[4] if row[4] is None else str(row[4]))


_SELECT = "SELECT name, display_name, endpoint, model, connection FROM lookalike_sql_models"


def find(ctx: Context, name: Name) -> SqlModel | None:
    rows = ctx.con.execute(_SELECT + " WHERE name = ?", [name.key]).fetchall()
    return _from_row(rows[0]) if rows else None


def get(ctx: Context, ref: exp.Expr) -> SqlModel:
    """The model a ``MODEL name`` argument names, or an error with a did-you-mean hint."""
    if not isinstance(ref, exp.Table):
        raise ctx.error("expected MODEL dataset.model_name here", at=ref)
    name = name_of(ref)
    model = find(ctx, name)
    if model is None:
        known = [_from_row(r).name for r in ctx.con.execute(_SELECT).fetchall()]
        hint = did_you_mean(name, known, "models") or "create it first: CREATE MODEL ... OPTIONS(ENDPOINT = 'default')"
        raise ctx.error(f"model {name.display} was not found", at=ref, hint=hint)
    return model


@statement("create_model")
def create_model(ctx: Context, parsed: ParsedStatement) -> Outcome:
    """``CREATE [OR REPLACE] MODEL [IF NOT EXISTS] name [REMOTE WITH CONNECTION c] OPTIONS(ENDPOINT = ...)``."""
    tree = parsed.tree
    assert isinstance(tree, exp.Create) and isinstance(tree.this, exp.Table)
    stmt = ctx.statement
    name = name_of(tree.this)
    if tree.args.get("expression") is not None:
        raise ctx.error(
            "training models (CREATE MODEL ... AS SELECT) is not supported",
            at=tree.this,
            cls=SqlNotSupported,
            hint="create a remote model: " + local_models(),
        )
    options = {key: (node, offset) for key, node, offset in create_options(stmt, tree)}
    model_type = constant(stmt, options["model_type"][0], "MODEL_TYPE") if "model_type" in options else None
    if isinstance(model_type, str) and model_type.upper() == "ONNX":
        endpoint, model = _import_onnx(ctx, name, options)
    elif model_type is not None:
        raise ctx.error(
            f"training models (OPTIONS(model_type = {model_type!r})) is not supported",
            at=options["model_type"][1],
            cls=SqlNotSupported,
            hint="import an ONNX identity network (MODEL_TYPE = 'ONNX', MODEL_PATH = ...), or " + local_models(),
        )
    connection = None
    props = tree.args.get("properties")
    for prop in props.expressions if props else []:
        if isinstance(prop, exp.RemoteWithConnectionModelProperty):
            connection = prop.this.sql(dialect="bigquery").replace("`", "")
    if model_type is None:
        if "endpoint" not in options:
            raise ctx.error("CREATE MODEL needs OPTIONS(ENDPOINT = '...')", at=tree.this, hint="use " + local_models())
        endpoint_node, endpoint_at = options["endpoint"]
        endpoint = constant(stmt, endpoint_node, "ENDPOINT")
        if not isinstance(endpoint, str) or not endpoint.strip():
            raise ctx.error("ENDPOINT must be a model name string", at=endpoint_at, hint="use " + local_models())
        if endpoint.strip().lower().startswith(("http://", "https://")):
            model = _import_remote(ctx, name, options, endpoint.strip(), connection)
        else:
            model = resolve_endpoint(ctx, endpoint.strip(), endpoint_at)
    existing = find(ctx, name)
    if existing is not None and not tree.args.get("replace"):
        if tree.args.get("exists"):
            return Outcome(None, f"model {name.display} already exists; left unchanged")
        raise ctx.error(
            f"model {name.display} already exists", at=tree.this, hint="use CREATE OR REPLACE MODEL, or another name"
        )
    ctx.ensure_schema(name.schema)
    ctx.con.execute(
        """INSERT OR REPLACE INTO lookalike_sql_models (name, display_name, endpoint, model, connection)
           VALUES (?, ?, ?, ?, ?)""",
        [name.key, f"{name.schema}.{name.name}", endpoint, model, connection],
    )
    if not is_installed(model):
        ctx.notice(f"face model {model!r} is not installed yet; see 'lookalike models' for how to install it")
    verb = "replaced" if existing is not None else "created"
    return Outcome(None, f"{verb} model {name.display} (face model {model})")


def _check_options(ctx: Context, options: dict[str, tuple[exp.Expr, int]], allowed: tuple[str, ...], kind: str) -> None:
    """A positioned error naming the first option not in ``allowed``."""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ctx.error(
            f"unknown option {unknown[0].upper()} for {kind}",
            at=options[unknown[0]][1],
            hint="options: " + ", ".join(o.upper() for o in allowed),
        )


_ONNX_OPTIONS = ("model_type", "model_path", "input_size", "mean", "std", "color_order", "layout")


def _import_onnx(ctx: Context, name: Name, options: dict[str, tuple[exp.Expr, int]]) -> tuple[str, str]:
    """``MODEL_TYPE = 'ONNX'``: register the file at MODEL_PATH as a user face model (its name: the SQL model's)."""
    from lookalike.errors import LookalikeError
    from lookalike.faces.user_models import add_model

    stmt = ctx.statement
    _check_options(ctx, options, _ONNX_OPTIONS, "an ONNX model")
    if "model_path" not in options:
        raise ctx.error("MODEL_TYPE = 'ONNX' needs MODEL_PATH = 'path or gs://... URI of the .onnx file'")
    values = {k: constant(stmt, node, k.upper()) for k, (node, _) in options.items()}
    path = values["model_path"]
    if not isinstance(path, str) or not path:
        raise ctx.error("MODEL_PATH must be a string", at=options["model_path"][1])
    model = f"{name.schema}.{name.name}".lower() if name.schema.lower() != "main" else name.name.lower()
    kwargs: dict[str, object] = {}
    for key in ("input_size", "mean", "std", "color_order", "layout"):
        if key in values:
            kwargs[key] = values[key]
    try:
        add_model(model, path, replace=True, storage_options=ctx.storage_options, **kwargs)  # type: ignore[arg-type]
    except LookalikeError as err:
        raise ctx.error(err.message, at=options["model_path"][1], hint=err.hint) from None
    return f"onnx:{path}", model


_REMOTE_OPTIONS = ("endpoint", "input_size", "timeout_seconds", "retries")


def _import_remote(
    ctx: Context, name: Name, options: dict[str, tuple[exp.Expr, int]], endpoint: str, connection: str | None
) -> str:
    """``ENDPOINT = 'https://...'``: register the HTTP embedding service as a user face model (the SQL model's
    name); one grey crop is sent to learn its vectors' dimension."""
    from lookalike.errors import LookalikeError
    from lookalike.faces.user_models import add_remote_model

    stmt = ctx.statement
    _check_options(ctx, options, _REMOTE_OPTIONS, "a remote model")
    values = {k: constant(stmt, node, k.upper()) for k, (node, _) in options.items()}
    model = f"{name.schema}.{name.name}".lower() if name.schema.lower() != "main" else name.name.lower()
    kwargs: dict[str, object] = {"connection": connection}
    for key, arg in (("input_size", "input_size"), ("timeout_seconds", "timeout"), ("retries", "retries")):
        if key in values:
            kwargs[arg] = values[key]
    try:
        add_remote_model(model, endpoint, replace=True, **kwargs)  # type: ignore[arg-type]
    except LookalikeError as err:
        raise ctx.error(err.message, at=options["endpoint"][1], hint=err.hint) from None
    return model


@statement("drop_model")
def drop_model(ctx: Context, parsed: ParsedStatement) -> Outcome:
    """``DROP MODEL [IF EXISTS] name``."""
    tree = parsed.tree
    assert isinstance(tree, exp.Drop)
    dropped = []
    for ref in tree.find_all(exp.Table):
        name = name_of(ref)
        if find(ctx, name) is None:
            if tree.args.get("exists"):
                continue
            get(ctx, ref)  # raises with a hint
        ctx.con.execute("DELETE FROM lookalike_sql_models WHERE name = ?", [name.key])
        dropped.append(name.display)
    return Outcome(None, f"dropped model {', '.join(dropped)}" if dropped else "no model dropped")


def forget_schema(ctx: Context, schema: str) -> None:
    """After ``DROP SCHEMA``: forget the models that lived in it."""
    for (key,) in ctx.con.execute("SELECT name FROM lookalike_sql_models").fetchall():
        if from_key(str(key)).schema == schema.lower():
            ctx.con.execute("DELETE FROM lookalike_sql_models WHERE name = ?", [key])
