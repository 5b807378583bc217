"""The shape of lib/, checked from the source: what the README's layout section promises.

Every import counts, including those inside functions and under `TYPE_CHECKING`: a cycle
that only lazy imports hide still means two modules cannot be understood apart.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LIB = ROOT / "lib"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(LIB.rglob("*.py"))}


def _imports(path: Path, known: set[str]) -> set[str]:
    """The lib modules `path` imports anywhere in its body (lazy and TYPE_CHECKING too)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name in known)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                sub = f"{node.module}.{alias.name}"
                if sub in known:  # `from lib.web import session` imports a module
                    found.add(sub)
                elif node.module in known:
                    found.add(node.module)
    return found


def import_graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(path, known) - {name} for name, path in modules.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle as a path [a, b, …, a], or None (iterative DFS, three colours)."""
    state: dict[str, int] = {}  # 1 = on the stack, 2 = done
    for start in sorted(graph):
        if state.get(start):
            continue
        stack: list[tuple[str, list[str]]] = [(start, sorted(graph[start]))]
        path = [start]
        state[start] = 1
        while stack:
            node, todo = stack[-1]
            if not todo:
                stack.pop()
                path.pop()
                state[node] = 2
                continue
            nxt = todo.pop()
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if not state.get(nxt):
                state[nxt] = 1
                path.append(nxt)
                stack.append((nxt, sorted(graph.get(nxt, ()))))
    return None


def test_the_graph_sees_lazy_and_type_checking_imports() -> None:
    graph = import_graph()
    # lib.webhooks.handlers names lib.app only under TYPE_CHECKING; lib.app resets the KV
    # client with an import inside a function.
    assert "lib.app" in graph["lib.webhooks.handlers"]
    assert "lib.kv.client" in graph["lib.app"]
    assert "lib.web.session" in graph["lib.web.pages.configure"]


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a"}}) is None


def test_lib_has_no_import_cycles() -> None:
    assert find_cycle(import_graph()) is None


def test_package_init_files_are_empty() -> None:
    """No re-exports: importing a package must not import its modules (cold start)."""
    inits = sorted(LIB.rglob("__init__.py"))
    assert len(inits) >= 7
    assert [p for p in inits if p.read_text().strip()] == []


def test_dependencies_point_down() -> None:
    """The lower layers never import the upper ones: the Vercel client and the KV package
    know nothing of provisioning, webhooks or the web; nothing imports the web but api/
    and the pages; only lib.app assembles the process objects."""
    graph = import_graph()

    def reaches(src: str, prefix: str) -> bool:
        return any(d == prefix or d.startswith(prefix + ".") for d in graph[src])

    for name in graph:
        if name.startswith(("lib.vercel", "lib.kv")):
            for upper in ("lib.provisioning", "lib.webhooks", "lib.web", "lib.app"):
                assert not reaches(name, upper), (name, upper)
        if not name.startswith("lib.web"):
            assert not reaches(name, "lib.web"), name


# -- the store owns every KV key and command -------------------------------------------------

# Every Redis command the project sends, and the common ones it might start to.
_COMMANDS = frozenset(
    [
        "APPEND",
        "DECR",
        "DECRBY",
        "DEL",
        "EVAL",
        "EVALSHA",
        "EXEC",
        "EXISTS",
        "EXPIRE",
        "EXPIREAT",
        "GET",
        "GETDEL",
        "GETEX",
        "GETSET",
        "HDEL",
        "HEXISTS",
        "HGET",
        "HGETALL",
        "HINCRBY",
        "HKEYS",
        "HLEN",
        "HMGET",
        "HMSET",
        "HSET",
        "HSETNX",
        "HVALS",
        "INCR",
        "INCRBY",
        "KEYS",
        "LPUSH",
        "LRANGE",
        "MGET",
        "MSET",
        "MULTI",
        "PERSIST",
        "PEXPIRE",
        "PING",
        "PTTL",
        "RPUSH",
        "SADD",
        "SCAN",
        "SCARD",
        "SCRIPT",
        "SET",
        "SETEX",
        "SETNX",
        "SISMEMBER",
        "SMEMBERS",
        "SPOP",
        "SREM",
        "TTL",
        "TYPE",
        "UNLINK",
        "ZADD",
        "ZCARD",
        "ZRANGE",
        "ZRANGEBYSCORE",
        "ZREM",
        "ZSCORE",
    ]
)
# The first segment of every key in the layout documented in lib/kv/store.py.
_KEY_SEGMENT = re.compile(
    r"^(?:vi:\w|(?:inst|owner|all|secrets|projects|pending|event|state|code):)"
)
# HTTP methods share names with Redis commands (GET): a list of only these is not KV.
_HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Who may hold the KV client itself: the KV package, the process objects, the health check.
_CLIENT_USERS = {"lib.app", "lib.health"}


def kv_violations(name: str, source: str) -> list[str]:
    """Where a module outside lib/kv speaks KV itself: a command literal, a key string,
    the store's client or its batches, or the layout's key builder."""
    found: list[str] = []
    tree = ast.parse(source)
    for node in ast.walk(tree):
        where = f"{name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, (ast.List, ast.Tuple)) and node.elts:
            first = node.elts[0]
            verbs = all(isinstance(e, ast.Constant) and e.value in _HTTP_METHODS for e in node.elts)
            if isinstance(first, ast.Constant) and first.value in _COMMANDS and not verbs:
                found.append(f"{where}: command literal {first.value!r}")
        elif isinstance(node, ast.Call) and node.args:
            first = node.args[0]
            func = node.func
            sends = isinstance(func, ast.Attribute) and func.attr in ("call", "execute")
            if sends and isinstance(first, ast.Constant) and first.value in _COMMANDS:
                found.append(f"{where}: command {first.value!r} sent")
            if (
                isinstance(func, ast.Attribute)
                and func.attr == "key"
                and isinstance(first, ast.Constant)
            ):
                found.append(f"{where}: key built with .key({first.value!r})")
        elif isinstance(node, ast.Attribute) and node.attr in ("pipeline", "transaction"):
            found.append(f"{where}: .{node.attr}")
        elif isinstance(node, ast.Attribute) and node.attr == "kv" and _is_store(node.value):
            found.append(f"{where}: .kv")  # the store's client (settings.kv is config)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            if _KEY_SEGMENT.match(node.value) or node.value.startswith("processing:"):
                found.append(f"{where}: key string {node.value!r}")
        elif isinstance(node, ast.ImportFrom) and node.module == "lib.kv.client":
            held = {a.name for a in node.names} & {"KV", "get_kv"}
            if held and name not in _CLIENT_USERS:
                found.append(f"{where}: imports the KV client {sorted(held)}")
    return found


def _is_store(node: ast.expr) -> bool:
    named = node.id if isinstance(node, ast.Name) else getattr(node, "attr", "")
    return str(named).endswith("store")


def _sources_outside_kv() -> dict[str, str]:
    files = [*sorted(LIB.rglob("*.py")), *sorted((ROOT / "api").glob("*.py"))]
    return {
        _module_name(p): p.read_text() for p in files if not _module_name(p).startswith("lib.kv")
    }


def test_the_kv_scan_catches_each_kind_of_raw_kv_use() -> None:
    bad = """
store.kv.pipeline([["SET", k, v], ("GET", k)])
kv.call("ZSCORE", "vi:pending", cfg)
store.kv.transaction(cmds)
key = store.key("inst", cfg)
lease = "processing:" + token
prefix = f"event:{event_id}"
from lib.kv.client import KV
"""
    problems = "\n".join(kv_violations("lib.example", bad))
    for expected in (
        "command literal 'SET'",
        "command literal 'GET'",
        "command 'ZSCORE' sent",
        "key string 'vi:pending'",
        ".pipeline",
        ".transaction",
        ".kv",
        ".key('inst')",
        "key string 'processing:'",
        "key string 'event:'",
        "imports the KV client ['KV']",
    ):
        assert expected in problems, expected
    fine = """
x = ['set', 'the', 'table']
y = env.key
url = settings.kv.url
endpoint(handle, methods=("GET", "HEAD"))
client._request("GET", path)
"""
    assert kv_violations("lib.example", fine) == []


def test_no_module_outside_lib_kv_speaks_kv_itself() -> None:
    """Keys and commands live in lib/kv/store.py alone (issue 10): a new key or command
    anywhere else is a finding, so the layout stays in one place."""
    sources = _sources_outside_kv()
    assert "lib.webhooks.receive" in sources
    assert "api.webhook" in sources
    problems = [p for name, src in sources.items() for p in kv_violations(name, src)]
    assert problems == []


# -- constant-time comparisons of secrets (issue 11, "Tests that would notice") ----------
#
# `==` on a MAC, token or state leaks by timing how much of it matched; compare_digest
# does not (https://docs.python.org/3/library/hmac.html#hmac.compare_digest). No ruff
# rule covers it, so this scan flags `==`/`!=` whose operand is named like a secret.

_SECRETISH = re.compile(
    r"(?:^|_)(?:h?mac|sig|signature|digest|hexdigest|token|secret|state|nonce|password"
    r"|verifier|expected|presented|session|browser)s?(?:_id)?(?:_|$)",
    re.IGNORECASE,
)
# Calls that keep the value they are given: `sig.encode()` is still the signature.
_SAME_VALUE = frozenset({"encode", "decode", "strip", "lower", "upper", "casefold", "str", "bytes"})
# Operator settings compared with each other once at start-up: no attacker input.
_PLAIN_COMPARISON_ALLOWED = frozenset(
    {
        "previous_secret == client_secret",
        "token == env.get(f'{prefix}KV_REST_API_READ_ONLY_TOKEN', '').strip()",
    }
)


def _value_names(node: ast.expr) -> set[str]:
    """The names an operand's value comes from: `a.b` → b, `f(x)` → f and x."""
    if isinstance(node, ast.Name):
        return {node.id}
    if isinstance(node, ast.Attribute):
        return {node.attr}
    if isinstance(node, ast.Subscript):
        return _value_names(node.value)
    if isinstance(node, ast.Call):
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr in _SAME_VALUE:
            return _value_names(func.value)
        names = _value_names(func) - _SAME_VALUE
        for arg in node.args:
            names |= _value_names(arg)
        return names
    return set()


def plain_secret_comparisons(source: str) -> list[str]:
    """`==`/`!=` comparisons with an operand named like a secret (a literal is fine)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        operands = [node.left, *node.comparators]
        for op, left, right in zip(node.ops, operands, operands[1:], strict=False):
            if not isinstance(op, ast.Eq | ast.NotEq):
                continue
            if isinstance(left, ast.Constant) or isinstance(right, ast.Constant):
                continue
            names = _value_names(left) | _value_names(right)
            text = ast.unparse(node)
            if any(_SECRETISH.search(n) for n in names) and text not in _PLAIN_COMPARISON_ALLOWED:
                found.append(f"line {node.lineno}: {text}")
    return found


def _product_sources() -> dict[str, str]:
    files = sorted([*LIB.rglob("*.py"), *(ROOT / "api").rglob("*.py")])
    return {str(p.relative_to(ROOT)): p.read_text() for p in files}


class _PlainEquality(ast.NodeTransformer):
    """`compare_digest(a, b)` → `a == b`: the mutant the scan must catch."""

    def visit_Call(self, node: ast.Call) -> ast.AST:
        func = node.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name == "compare_digest" and len(node.args) == 2:
            return ast.Compare(node.args[0], [ast.Eq()], [node.args[1]])
        return self.generic_visit(node)


def test_every_constant_time_comparison_turned_into_equality_is_caught() -> None:
    sources = _product_sources()
    mutated = 0
    for path, source in sources.items():
        if "compare_digest" not in source:
            continue
        mutant = ast.unparse(ast.fix_missing_locations(_PlainEquality().visit(ast.parse(source))))
        calls = source.count("compare_digest(")
        found = plain_secret_comparisons(mutant)
        assert len(found) >= calls, f"{path}: an == on a secret goes unnoticed: {found}"
        mutated += calls
    assert mutated >= 8  # crypto, install, session, sign-in, admin token, continuation
    fine = "status == other.status\nif token is None: pass\nstate == 'active'\n"
    assert plain_secret_comparisons(fine) == []


def test_secrets_are_compared_in_constant_time() -> None:
    problems = {
        path: found
        for path, source in _product_sources().items()
        if (found := plain_secret_comparisons(source))
    }
    assert problems == {}, "use hmac.compare_digest for these comparisons"
