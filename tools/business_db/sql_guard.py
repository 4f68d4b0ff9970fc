"""The SQL guard: decides, without touching a database, whether a query may run.

The approval gate calls :func:`guard_sql` on the model's proposed SQL, and the data layer
calls it again before executing (each layer must hold alone). The guard parses the text with
sqlglot and accepts exactly one read-only SELECT built from an allowlist of syntax nodes and
functions; everything else is refused with a short message a model can act on. The row limit
is enforced by rewriting the parsed tree, and the statement that runs is the one generated
from that tree, never the caller's text with something appended.

Two dialects, each with its own function allowlist: ``sqlite`` (the default) and ``postgres``.
In PostgreSQL the allowlist leaves out whatever could undo the session the application set up
(``set_config``, ``current_setting``) or sleep, read files, reach other servers (``dblink``) or
touch large objects (``lo_*``); ``SET``, ``RESET`` and ``COPY`` are not SELECTs, and stacked
statements are refused in both dialects (psycopg would run them all).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache, lru_cache

import sqlglot
from sqlglot import exp
from sqlglot.errors import ParseError

from mediavault.tools.business_db.sessions import DataAccessRefused

#: Longer statements are refused before parsing: no support question needs them.
MAX_SQL_CHARS = 10_000
#: randomblob()/zeroblob() are allowed only with a literal size up to this many bytes.
MAX_BLOB_BYTES = 1024

# sqlglot reports unsupported statements through logging before raising or falling back to
# a generic command; those statements are refused here, so the warning is noise for callers.
logging.getLogger("sqlglot").addHandler(logging.NullHandler())


class SqlRefused(DataAccessRefused):
    """The guard refused a statement; ``rule`` names the rule, ``message`` says how to fix it."""


@dataclass(frozen=True, slots=True)
class GuardedQuery:
    """A statement the guard accepted.

    ``sql`` is the statement to execute, regenerated from the checked tree with the row limit
    in place. ``tables`` are the tables and views it reads (lower case, ``schema.name`` when
    the query qualified them), CTE names excluded. ``limit`` is the effective row limit and
    ``limit_rewritten`` says whether the guard added or lowered it.
    """

    original: str
    sql: str
    tables: frozenset[str]
    limit: int
    limit_rewritten: bool


@dataclass(frozen=True, slots=True)
class _DialectRules:
    """What one SQL dialect may use."""

    name: str
    #: The dialect's name in messages ("SQLite", "PostgreSQL").
    label: str
    #: Function names as the database reports them; shared with the connection's authorizer.
    functions: frozenset[str]
    #: Schema qualifiers a table reference may carry.
    schemas: frozenset[str]
    #: Prefix of the database's internal catalog tables.
    internal_prefix: str
    #: Built-in table-valued functions, which also answer to a bare name (FROM json_each).
    table_functions: frozenset[str]
    table_function_prefixes: tuple[str, ...]
    collations: frozenset[str]
    #: Allowed functions a refusal suggests instead.
    examples: str = ""
    #: Syntax nodes this dialect allows on top of the shared allowlist.
    extra_nodes: frozenset[type[exp.Expr]] = frozenset()
    #: Nodes under which a bare keyword (``exp.Var``: a unit, a collation) is expected.
    keyword_parents: tuple[type[exp.Expr], ...] = (exp.Collate,)
    #: Types a CAST may target; None leaves casts unrestricted (SQLite has no risky types).
    cast_types: frozenset[exp.DType] | None = None


#: Sample calls for every SQLite function a query may use. The sqlglot node types these parse
#: to form the typed-function allowlist, so the list is written once, in SQLite's own names.
_SQLITE_FUNCTION_SAMPLES: dict[str, tuple[str, ...]] = {
    # aggregates
    "avg": ("avg(1)",),
    "count": ("count(1)", "count(*)"),
    "group_concat": ("group_concat('a')", "group_concat('a', ',')"),
    "max": ("max(1)", "max(1, 2)"),
    "min": ("min(1)", "min(1, 2)"),
    "sum": ("sum(1)",),
    "total": ("total(1)",),
    # text and numbers
    "abs": ("abs(1)",),
    "ceil": ("ceil(1.5)",),
    "ceiling": ("ceiling(1.5)",),
    "char": ("char(65)",),
    "coalesce": ("coalesce(1, 2)",),
    "floor": ("floor(1.5)",),
    "format": ("format('%d', 1)",),
    "hex": ("hex('a')",),
    "ifnull": ("ifnull(1, 2)",),
    "iif": ("iif(1, 2, 3)",),
    "instr": ("instr('a', 'b')",),
    "length": ("length('a')",),
    "lower": ("lower('a')",),
    "ltrim": ("ltrim('a')", "ltrim('a', 'b')"),
    "nullif": ("nullif(1, 2)",),
    "printf": ("printf('%d', 1)",),
    "quote": ("quote('a')",),
    "random": ("random()",),
    "randomblob": ("randomblob(8)",),
    "replace": ("replace('a', 'b', 'c')",),
    "round": ("round(1.5)", "round(1.5, 1)"),
    "rtrim": ("rtrim('a')", "rtrim('a', 'b')"),
    "sign": ("sign(1)",),
    "substr": ("substr('abc', 1)", "substr('abc', 1, 2)"),
    "substring": ("substring('abc', 1)", "substring('abc', 1, 2)"),
    "trim": ("trim('a')", "trim('a', 'b')"),
    "typeof": ("typeof(1)",),
    "unicode": ("unicode('a')",),
    "upper": ("upper('a')",),
    "zeroblob": ("zeroblob(8)",),
    # dates and times
    "date": ("date('2006-02-20')", "date('2006-02-20', '+3 days')"),
    "datetime": ("datetime('2006-02-20')", "datetime('2006-02-20', '+3 days')"),
    "julianday": ("julianday('2006-02-20')",),
    "strftime": ("strftime('%Y', '2006-02-20')",),
    "time": ("time('2006-02-20 10:00')",),
    "unixepoch": ("unixepoch('2006-02-20')",),
    # window functions
    "cume_dist": ("cume_dist() OVER ()",),
    "dense_rank": ("dense_rank() OVER ()",),
    "first_value": ("first_value(1) OVER ()",),
    "lag": ("lag(1) OVER ()", "lag(1, 2) OVER ()"),
    "last_value": ("last_value(1) OVER ()",),
    "lead": ("lead(1) OVER ()", "lead(1, 2) OVER ()"),
    "nth_value": ("nth_value(1, 1) OVER ()",),
    "ntile": ("ntile(2) OVER ()",),
    "percent_rank": ("percent_rank() OVER ()",),
    "rank": ("rank() OVER ()",),
    "row_number": ("row_number() OVER ()",),
}
#: Functions whose size argument must be a small literal (they allocate that many bytes).
_SIZED_FUNCTIONS = frozenset({"randomblob", "zeroblob"})
#: printf()/format() build their result in a single step that the time budget cannot stop
#: ('%.2000000000c' takes half a minute), so widths and precisions are small literals.
_FORMATTING_FUNCTIONS = frozenset({"printf", "format"})
MAX_FORMAT_WIDTH = 100
_FORMAT_SPEC = re.compile(r"%[-+ 0#,!]*(\*|\d+)?(?:\.(\*|\d+))?")

_SQLITE_TABLE_FUNCTIONS = frozenset(
    {"json_each", "json_tree", "dbstat", "fts3tokenize", "generate_series", "fsdir", "zipfile",
     "completion", "carray", "sqlar", "vfsstat", "bytecode", "tables_used"}
)  # fmt: skip

SQLITE_RULES = _DialectRules(
    name="sqlite",
    label="SQLite",
    # LIKE and GLOB operators reach the authorizer as the functions like() and glob().
    functions=frozenset(_SQLITE_FUNCTION_SAMPLES) | {"like", "glob"},
    schemas=frozenset({"main", "temp"}),
    internal_prefix="sqlite_",
    table_functions=_SQLITE_TABLE_FUNCTIONS,
    table_function_prefixes=("pragma_",),
    collations=frozenset({"binary", "nocase", "rtrim"}),
    examples="lower, substr, instr, coalesce, round, date, julianday, strftime, count, sum, "
    "avg, group_concat",
)

#: Sample calls for every PostgreSQL function a query may use, in PostgreSQL's own names.
#: Left out on purpose: anything that sleeps, reads files or settings, changes the session
#: (set_config, current_setting), reaches other servers (dblink), touches large objects
#: (lo_*), or builds huge values from a small query (repeat, lpad, rpad, and string_agg, whose
#: one value grows in the server's memory with every row of a cross join; no setting bounds it).
_POSTGRES_FUNCTION_SAMPLES: dict[str, tuple[str, ...]] = {
    # aggregates
    "avg": ("avg(1)",),
    "bool_and": ("bool_and(true)",),
    "bool_or": ("bool_or(true)",),
    "count": ("count(1)", "count(*)"),
    "max": ("max(1)",),
    "min": ("min(1)",),
    "sum": ("sum(1)",),
    # text and numbers
    "abs": ("abs(1)",),
    "btrim": ("btrim(' a ')",),
    "ceil": ("ceil(1.5)",),
    "ceiling": ("ceiling(1.5)",),
    "char_length": ("char_length('a')",),
    "coalesce": ("coalesce(1, 2)",),
    "concat": ("concat('a', 'b')",),
    "concat_ws": ("concat_ws(',', 'a', 'b')",),
    "floor": ("floor(1.5)",),
    "greatest": ("greatest(1, 2)",),
    "initcap": ("initcap('a b')",),
    "least": ("least(1, 2)",),
    "left": ("left('abc', 2)",),
    "length": ("length('a')",),
    "lower": ("lower('a')",),
    "ltrim": ("ltrim(' a')", "ltrim('xa', 'x')"),
    "nullif": ("nullif(1, 2)",),
    "position": ("position('b' in 'abc')",),
    "replace": ("replace('a', 'b', 'c')",),
    "right": ("right('abc', 2)",),
    "round": ("round(1.5)", "round(1.55, 1)"),
    "rtrim": ("rtrim('a ')", "rtrim('ax', 'x')"),
    "sign": ("sign(-1)",),
    "split_part": ("split_part('a,b', ',', 1)",),
    "strpos": ("strpos('abc', 'b')",),
    "substr": ("substr('abc', 1)", "substr('abc', 1, 2)"),
    "substring": ("substring('abc', 1, 2)", "substring('abc' from 1 for 2)"),
    "trim": ("trim(' a ')", "trim(both 'x' from 'xax')"),
    "trunc": ("trunc(1.5)", "trunc(1.55, 1)"),
    "upper": ("upper('a')",),
    # dates and times
    "age": ("age(now(), now())",),
    "current_date": ("current_date",),
    "current_timestamp": ("current_timestamp",),
    "date_part": ("date_part('day', now())",),
    "date_trunc": ("date_trunc('month', now())",),
    "extract": ("extract(day from now())", "extract(epoch from now())"),
    "make_date": ("make_date(2006, 2, 20)",),
    "now": ("now()",),
    "to_char": ("to_char(now(), 'YYYY-MM-DD')",),
    "to_date": ("to_date('2006-02-20', 'YYYY-MM-DD')",),
    # window functions
    "cume_dist": ("cume_dist() OVER ()",),
    "dense_rank": ("dense_rank() OVER ()",),
    "first_value": ("first_value(1) OVER ()",),
    "lag": ("lag(1) OVER ()", "lag(1, 2) OVER ()"),
    "last_value": ("last_value(1) OVER ()",),
    "lead": ("lead(1) OVER ()", "lead(1, 2) OVER ()"),
    "nth_value": ("nth_value(1, 1) OVER ()",),
    "ntile": ("ntile(2) OVER ()",),
    "percent_rank": ("percent_rank() OVER ()",),
    "rank": ("rank() OVER ()",),
    "row_number": ("row_number() OVER ()",),
}

_T = exp.DType
POSTGRES_RULES = _DialectRules(
    name="postgres",
    label="PostgreSQL",
    functions=frozenset(_POSTGRES_FUNCTION_SAMPLES),
    # Only the business tables' schema; pg_catalog and information_schema stay out of reach.
    schemas=frozenset({"public"}),
    internal_prefix="pg_",
    table_functions=frozenset(
        {"generate_series", "unnest", "json_each", "jsonb_each", "json_to_recordset",
         "jsonb_to_recordset", "dblink", "pg_ls_dir", "pg_options_to_table"}
    ),
    table_function_prefixes=("lo_", "dblink"),
    collations=frozenset({"c", "posix", "default", "ucs_basic"}),
    examples="lower, substr, strpos, coalesce, round, now, date_trunc, extract, age, count, "
    "sum, avg",
    extra_nodes=frozenset({exp.ILike, exp.Interval}),
    keyword_parents=(exp.Collate, exp.Interval, exp.Extract, exp.TimestampTrunc),
    # Casts to types whose input functions look things up (regclass, regproc, ...) are out.
    cast_types=frozenset(
        {_T.SMALLINT, _T.INT, _T.BIGINT, _T.DECIMAL, _T.DOUBLE, _T.FLOAT, _T.TEXT, _T.VARCHAR,
         _T.CHAR, _T.DATE, _T.TIME, _T.TIMESTAMP, _T.TIMESTAMPTZ, _T.INTERVAL, _T.BOOLEAN}
    ),
)  # fmt: skip
_DIALECTS: dict[str, _DialectRules] = {"sqlite": SQLITE_RULES, "postgres": POSTGRES_RULES}
_FUNCTION_SAMPLES: dict[str, dict[str, tuple[str, ...]]] = {
    "sqlite": _SQLITE_FUNCTION_SAMPLES,
    "postgres": _POSTGRES_FUNCTION_SAMPLES,
}

#: Syntax nodes a read-only SELECT may contain, besides allowlisted functions.
_ALLOWED_NODES: frozenset[type[exp.Expr]] = frozenset(
    {
        exp.Select, exp.Union, exp.Intersect, exp.Except, exp.With, exp.CTE, exp.TableAlias,
        exp.Subquery, exp.From, exp.Join, exp.Table, exp.Identifier, exp.Column, exp.Star,
        exp.Alias, exp.Where, exp.Group, exp.Having, exp.Order, exp.Ordered, exp.Limit,
        exp.Offset, exp.Distinct, exp.Window, exp.WindowSpec, exp.Filter, exp.Values,
        exp.Tuple, exp.Paren, exp.Literal, exp.Null, exp.Boolean, exp.HexString,
        exp.And, exp.Or, exp.Not, exp.EQ, exp.NEQ, exp.NullSafeEQ, exp.NullSafeNEQ, exp.GT,
        exp.GTE, exp.LT, exp.LTE, exp.Is, exp.In, exp.Between, exp.Like, exp.Glob,
        exp.Escape, exp.Add, exp.Sub, exp.Mul, exp.Div, exp.Mod, exp.Neg, exp.DPipe,
        exp.BitwiseAnd, exp.BitwiseOr, exp.BitwiseNot, exp.BitwiseLeftShift,
        exp.BitwiseRightShift, exp.Case, exp.If, exp.Cast, exp.DataType, exp.DataTypeParam,
        exp.Exists, exp.Collate,
    }
)  # fmt: skip
#: Nodes that change data or the database: refused as "select_only" wherever they appear.
_WRITE_NODES: tuple[type[exp.Expr], ...] = (
    exp.Insert, exp.Update, exp.Delete, exp.Merge, exp.Create, exp.Drop, exp.Alter,
    exp.Pragma, exp.Attach, exp.Detach, exp.Command, exp.Transaction, exp.Commit,
    exp.Rollback, exp.Into, exp.Set, exp.Copy, exp.Lock,
)  # fmt: skip
_ROOTS: tuple[type[exp.Expr], ...] = (exp.Select, exp.SetOperation)

_FIX_SELECT = (
    "Rewrite it as one SELECT (WITH ... SELECT and UNION are fine); the data is read-only."
)
_FIX_SYNTAX = (
    "Use plain SELECT syntax: joins, WHERE, GROUP BY, HAVING, ORDER BY, LIMIT, subqueries, "
    "CTEs, CASE and window functions."
)


@cache
def _typed_function_nodes(dialect: str) -> dict[type[exp.Expr], str]:
    """sqlglot's typed node for each allowlisted function, mapped to the function's name."""
    if dialect not in _FUNCTION_SAMPLES:
        raise ValueError(f"no function samples for dialect {dialect!r}")
    nodes: dict[type[exp.Expr], str] = {}
    for name, samples in _FUNCTION_SAMPLES[dialect].items():
        for sample in samples:
            for node in sqlglot.parse_one(f"SELECT {sample}", read=dialect).walk():
                if isinstance(node, exp.Func) and not isinstance(node, exp.Anonymous):
                    nodes.setdefault(type(node), name)
    return nodes


def guard_sql(sql: str, *, dialect: str = "sqlite", max_rows: int = 100) -> GuardedQuery:
    """Check ``sql`` and return it rewritten with a row limit, or raise :class:`SqlRefused`.

    Accepts exactly one SELECT (including ``WITH ... SELECT`` and UNION/INTERSECT/EXCEPT)
    made only of allowlisted syntax and functions. A missing LIMIT becomes ``LIMIT max_rows``,
    a larger one is lowered, a smaller one kept; a LIMIT that is not a whole-number literal is
    refused. Pure: no I/O, safe to call from the approval gate.
    """
    if not isinstance(sql, str) or not isinstance(max_rows, int) or isinstance(max_rows, bool):
        return _guard_sql(sql, dialect=dialect, max_rows=max_rows)
    # The gate and the data layer check the same text; parsing is the guard's whole cost, and
    # the verdict of a pure function can be remembered.
    verdict = _remembered_verdict(sql, dialect, max_rows)
    if isinstance(verdict, GuardedQuery):
        return verdict
    raise SqlRefused(*verdict)


@lru_cache(maxsize=512)
def _remembered_verdict(sql: str, dialect: str, max_rows: int) -> GuardedQuery | tuple[str, str]:
    try:
        return _guard_sql(sql, dialect=dialect, max_rows=max_rows)
    except SqlRefused as refusal:
        return (refusal.rule, refusal.message)


def _guard_sql(sql: str, *, dialect: str, max_rows: int) -> GuardedQuery:
    rules = _DIALECTS.get(dialect)
    if rules is None:
        raise ValueError(f"unsupported SQL dialect {dialect!r}; supported: {sorted(_DIALECTS)}")
    if isinstance(max_rows, bool) or not isinstance(max_rows, int) or max_rows < 1:
        raise ValueError(f"max_rows must be a positive integer, got {max_rows!r}")
    if not isinstance(sql, str):
        raise SqlRefused("empty", "The query must be SQL text: send one SELECT statement.")
    if not sql.strip():
        raise SqlRefused("empty", "The query is empty: send one SELECT statement.")
    if len(sql) > MAX_SQL_CHARS:
        raise SqlRefused(
            "too_long",
            f"The query is {len(sql)} characters long; the limit is {MAX_SQL_CHARS}. "
            "Ask a smaller question: select fewer columns, aggregate, or split it up.",
        )
    if "\x00" in sql:
        raise SqlRefused("invalid_character", "The query contains a NUL character; remove it.")

    try:
        root = _parse_single_select(sql, rules)
        tables = _check_tree(root, rules)
        limit, rewritten = _apply_row_limit(root, max_rows)
        # Comments are dropped: they cannot change what runs, and a comment rendered back
        # into the text is one more place for a statement to hide.
        executed = root.sql(dialect=rules.name, comments=False)
        # What runs must itself pass the guard: re-check the generated text.
        _check_tree(_parse_single_select(executed, rules), rules)
    except SqlRefused:
        raise
    except RecursionError:
        raise SqlRefused(
            "too_complex", "The query is nested too deeply to check; simplify it."
        ) from None
    except Exception as error:  # a checker fault must refuse, never let a query through
        raise SqlRefused(
            "parse_error",
            f"The query could not be checked ({type(error).__name__}); "
            f"send one plain {rules.label} SELECT statement.",
        ) from None
    return GuardedQuery(
        original=sql, sql=executed, tables=tables, limit=limit, limit_rewritten=rewritten
    )


def _parse_single_select(sql: str, rules: _DialectRules) -> exp.Expr:
    try:
        statements = [s for s in sqlglot.parse(sql, read=rules.name) if s is not None]
    except ParseError as error:
        raise _explain_parse_error(sql, error, rules) from None
    except sqlglot.errors.SqlglotError as error:
        raise SqlRefused(
            "parse_error",
            f"The query could not be parsed ({_first_line(str(error))}). "
            f"Send one {rules.label} SELECT statement.",
        ) from None
    if not statements:
        raise SqlRefused("empty", "The query has no statement: send one SELECT statement.")
    if len(statements) > 1:
        raise SqlRefused(
            "single_statement",
            f"Send exactly one statement; found {len(statements)}. "
            "Remove the extra statements and the ';' between them.",
        )
    root = statements[0]
    if isinstance(root, exp.Subquery):
        raise SqlRefused(
            "select_only",
            "A statement cannot be wrapped in parentheses; remove the outer parentheses.",
        )
    if not isinstance(root, _ROOTS):
        kind = _kind(root)
        if isinstance(root, exp.Alias | exp.Column):
            # A bare command sqlglot does not know ("LISTEN x") reads as an aliased column.
            words = _keywords(sql, rules) or sql.split()[:1]
            kind = words[0].upper() if words else kind
        raise SqlRefused(
            "select_only", f"Only SELECT queries are allowed; this is {kind}. {_FIX_SELECT}"
        )
    return root


#: Keywords that, in a statement sqlglot cannot parse, show it was not meant as a SELECT.
_WRITE_KEYWORDS = frozenset(
    {
        "INSERT", "REPLACE", "UPDATE", "DELETE", "UPSERT", "CREATE", "DROP", "ALTER", "ATTACH",
        "DETACH", "PRAGMA", "VACUUM", "REINDEX", "ANALYZE", "BEGIN", "COMMIT", "ROLLBACK",
        "SAVEPOINT", "RELEASE", "SET", "RESET", "COPY", "TRUNCATE", "GRANT", "REVOKE", "LOCK",
        "CALL", "DO", "LISTEN", "NOTIFY", "DISCARD", "PREPARE", "EXECUTE", "DEALLOCATE",
    }
)  # fmt: skip


def _explain_parse_error(sql: str, error: ParseError, rules: _DialectRules) -> SqlRefused:
    words = _keywords(sql, rules)
    writes = [w for w in words if w in _WRITE_KEYWORDS]
    # REPLACE is also a function; only count it when it is not called like one.
    if writes and not (writes == ["REPLACE"] and "REPLACE INTO" not in " ".join(words)):
        return SqlRefused(
            "select_only", f"Only SELECT queries are allowed; this uses {writes[0]}. {_FIX_SELECT}"
        )
    detail = ""
    if error.errors:
        first = error.errors[0]
        where = f"line {first.get('line')}, column {first.get('col')}"
        detail = f"{first.get('description', '')} ({where})"
    return SqlRefused(
        "parse_error",
        f"The query could not be parsed: {_first_line(detail or str(error))}. "
        f"Fix the syntax and send one {rules.label} SELECT statement.",
    )


def _keywords(sql: str, rules: _DialectRules) -> list[str]:
    try:
        tokens = sqlglot.tokenize(sql, read=rules.name)
    except Exception:
        return []
    return [t.text.upper() for t in tokens if t.token_type.name not in {"STRING", "IDENTIFIER"}]


def _check_tree(root: exp.Expr, rules: _DialectRules) -> frozenset[str]:
    """Refuse any node outside the allowlist; return the tables the statement reads."""
    typed_functions = _typed_function_nodes(rules.name)
    tables: set[str] = set()
    for node in root.walk():
        if isinstance(node, _WRITE_NODES):
            raise SqlRefused(
                "select_only",
                f"Only SELECT queries are allowed; found {_kind(node)}. {_FIX_SELECT}",
            )
        if isinstance(node, exp.Table):
            table = _check_table(node, rules)
            if table is not None:
                tables.add(table)
        elif isinstance(node, exp.Collate):
            _check_collation(node, rules)
        elif isinstance(node, exp.Var):
            if not isinstance(node.parent, rules.keyword_parents):
                raise _syntax_refused(node)
            continue
        elif isinstance(node, exp.DataType):
            _check_cast_type(node, rules)
        elif isinstance(node, exp.Identifier):
            _check_identifier(node)
        elif isinstance(node, exp.Placeholder | exp.Parameter):
            raise SqlRefused(
                "placeholder", "Bind parameters are not supported; write values as literals."
            )
        if type(node) in _ALLOWED_NODES or type(node) in rules.extra_nodes:
            continue
        if isinstance(node, exp.Anonymous):
            _check_named_function(node.name.lower(), node, rules)
        elif isinstance(node, exp.Func) and type(node) in typed_functions:
            _check_named_function(typed_functions[type(node)], node, rules)
        elif isinstance(node, exp.Func):
            raise _function_refused(node.sql_name().lower(), rules)
        else:
            raise _syntax_refused(node)
    return frozenset(tables)


def _check_table(node: exp.Table, rules: _DialectRules) -> str | None:
    if isinstance(node.this, exp.Func):
        name = (node.this.name if isinstance(node.this, exp.Anonymous) else node.this.key).lower()
        raise _table_function_refused(name)
    if node.name.lower().startswith(rules.table_function_prefixes) or (
        node.name.lower() in rules.table_functions
    ):
        raise _table_function_refused(node.name.lower())
    if node.args.get("catalog") is not None:
        raise SqlRefused(
            "schema_not_allowed", f"Use plain table names; {node.sql()!r} names another database."
        )
    name = node.name.lower()
    schema = node.db.lower()
    if schema and schema not in rules.schemas:
        raise SqlRefused(
            "schema_not_allowed",
            f"Schema {schema!r} is not available; use plain table names such as film.",
        )
    if name.startswith(rules.internal_prefix):
        raise SqlRefused(
            "internal_table",
            f"{name} is an internal table and cannot be queried; "
            "ask for the schema description instead.",
        )
    if not schema and name in _visible_cte_names(node):
        return None
    return f"{schema}.{name}" if schema else name


def _table_function_refused(name: str) -> SqlRefused:
    if name.startswith("pragma_"):
        return SqlRefused(
            "pragma",
            f"PRAGMA functions such as {name} are not allowed. "
            "Ask for the schema description instead of querying SQLite's internals.",
        )
    return SqlRefused(
        "table_function",
        f"Table-valued functions such as {name} are not allowed; select from tables.",
    )


def _visible_cte_names(node: exp.Expr) -> set[str]:
    names: set[str] = set()
    parent = node.parent
    while parent is not None:
        # sqlglot renamed the argument from "with" to "with_"; accept either.
        with_clause = parent.args.get("with_") or parent.args.get("with")
        if isinstance(with_clause, exp.With):
            names.update(cte.alias_or_name.lower() for cte in with_clause.expressions)
        parent = parent.parent
    return names


def _check_identifier(node: exp.Identifier) -> None:
    # SQLite reads unquoted $name, :name, @name and ?NNN as bind parameters.
    if not node.quoted and node.name[:1] in {"$", ":", "@", "?"}:
        raise SqlRefused(
            "placeholder", "Bind parameters are not supported; write values as literals."
        )


def _check_cast_type(node: exp.DataType, rules: _DialectRules) -> None:
    if rules.cast_types is None or node.this in rules.cast_types:
        return
    raise SqlRefused(
        "syntax_not_allowed",
        f"Casting to {node.sql(dialect=rules.name)} is not allowed; cast to text, integer, "
        "numeric, date, timestamp, interval or boolean.",
    )


def _check_collation(node: exp.Collate, rules: _DialectRules) -> None:
    collation = node.expression
    # PostgreSQL collations are quoted names, which sqlglot reads as a column reference.
    named = isinstance(collation, exp.Var | exp.Identifier | exp.Column)
    name = collation.name.lower() if named else ""
    if name not in rules.collations:
        raise SqlRefused(
            "syntax_not_allowed",
            f"Collation {collation.sql()!r} is not available; use one of "
            f"{', '.join(sorted(rules.collations)).upper()}.",
        )


def _check_named_function(name: str, node: exp.Func, rules: _DialectRules) -> None:
    if name not in rules.functions:
        raise _function_refused(name, rules)
    if name in _FORMATTING_FUNCTIONS:
        arguments = _call_arguments(node)
        template = arguments[0] if arguments else None
        if not (isinstance(template, exp.Literal) and template.is_string) or any(
            size == "*" or int(size) > MAX_FORMAT_WIDTH
            for spec in _FORMAT_SPEC.finditer(template.this)
            for size in spec.groups()
            if size
        ):
            raise SqlRefused(
                "format_width",
                f"{name}() needs a literal format whose widths and precisions are numbers of "
                f"at most {MAX_FORMAT_WIDTH}, e.g. {name}('%.2f', amount).",
            )
    if name in _SIZED_FUNCTIONS:
        arguments = _call_arguments(node)
        size = _literal_int(arguments[0]) if len(arguments) == 1 else None
        if size is None or size > MAX_BLOB_BYTES:
            raise SqlRefused(
                "blob_size",
                f"{name}() needs a literal size of at most {MAX_BLOB_BYTES} bytes, "
                f"e.g. {name}(16).",
            )


def _call_arguments(node: exp.Func) -> list[exp.Expr]:
    if isinstance(node, exp.Anonymous):
        return list(node.expressions)
    return [v for v in node.args.values() if isinstance(v, exp.Expr)]


def _function_refused(name: str, rules: _DialectRules) -> SqlRefused:
    return SqlRefused(
        "function_not_allowed",
        f"Function {name}() is not allowed. Use standard functions such as {rules.examples}.",
    )


def _syntax_refused(node: exp.Expr) -> SqlRefused:
    return SqlRefused("syntax_not_allowed", f"{_kind(node)} is not allowed here. {_FIX_SYNTAX}")


def _apply_row_limit(root: exp.Expr, max_rows: int) -> tuple[int, bool]:
    """Put ``LIMIT max_rows`` on the outermost query (a compound query's, for UNION)."""
    limit = root.args.get("limit")
    if limit is None:
        root.set("limit", exp.Limit(expression=exp.Literal.number(max_rows)))
        return max_rows, True
    if not isinstance(limit, exp.Limit):
        raise _syntax_refused(limit)
    requested = _literal_int(limit.expression)
    if requested is None:
        raise SqlRefused(
            "limit",
            f"LIMIT must be a plain whole number of rows (at most {max_rows}); "
            f"write e.g. LIMIT {max_rows}.",
        )
    if requested > max_rows:
        limit.set("expression", exp.Literal.number(max_rows))
        return max_rows, True
    return requested, False


def _literal_int(node: exp.Expr | None) -> int | None:
    if not isinstance(node, exp.Literal) or node.is_string:
        return None
    try:
        return int(node.this)
    except ValueError:
        return None


def _kind(node: exp.Expr) -> str:
    if isinstance(node, exp.Command):
        return str(node.this).upper() or "a command"
    return node.key.upper()


def _first_line(text: str) -> str:
    line = text.strip().splitlines()[0] if text.strip() else "unknown error"
    return line if len(line) <= 200 else line[:197] + "..."


def allowed_functions(dialect: str = "sqlite") -> frozenset[str]:
    """Function names a query may call in ``dialect``, as the database itself names them."""
    rules = _DIALECTS.get(dialect)
    if rules is None:
        raise ValueError(f"unsupported SQL dialect {dialect!r}")
    return rules.functions


def function_examples(dialect: str = "sqlite") -> Iterator[tuple[str, str]]:
    """(name, example call) for every allowlisted function, e.g. to check each one runs."""
    if dialect not in _DIALECTS:
        raise ValueError(f"unsupported SQL dialect {dialect!r}")
    for name, samples in _FUNCTION_SAMPLES[dialect].items():
        for sample in samples:
            yield name, sample
