"""Vercel's own builder as a judge: the pinned CLI's `vercel build`, offline, on a copy.

`vercel build` (https://vercel.com/docs/cli/build) runs the same `@vercel/python` builder
a deployment does and writes the Build Output API tree
(https://vercel.com/docs/build-output-api/v3): `static/` and one `functions/<path>.func`
per function, whose `.vc-config.json` names the Lambda handler (`vc__handler__python`,
the trampoline in the `.func` directory) and, in `filePathMap`, every other file of the
bundle (bundle path -> path in the built tree). This module builds a copy of the working
tree, lays each bundle out as Lambda would unpack it, and runs it in a fresh Python 3.12
with nothing but the bundle on its path, through both interfaces of Vercel's Python
runtime (`vercel-runtime`, shipped inside the bundle):

- events: `vc_handler({"body": json({method, path, headers, body, encoding})}, context)`
  answers `{statusCode, headers, body[, encoding]}` (no `VERCEL_IPC_PATH` set);
- IPC: with `VERCEL_IPC_PATH` set, importing the trampoline connects to that Unix socket,
  serves HTTP on a loopback port, announces it with a NUL-terminated JSON message
  `{"type": "server-started", "payload": {"httpPort": ...}}`, and reports
  `handler-started` / `end` (and `log`) messages per request, keyed by the
  `x-vercel-internal-invocation-id` / `x-vercel-internal-request-id` headers.

Offline: the CLI is pointed (`--api`) at a loopback port that refuses connections (it
asks the API who the user is, for telemetry, even with telemetry disabled and no token),
keeps its global config in the work directory, and `uv` (from .venv) resolves the
requirements from PyPI, the only network it uses. `vercel build` writes pyproject.toml,
uv.lock and .vercel/ into the tree it builds: it only ever builds a copy.

`python -m dev.vercel_build` builds the checkout and prints the build time and each
function's bundle size as JSON.
"""

from __future__ import annotations

import base64
import json
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import httpx

ROOT = Path(__file__).resolve().parent.parent
CLI_DIR = ROOT / "dev" / "vercel-cli"
CLI = CLI_DIR / "node_modules" / ".bin" / "vercel"
VENV_BIN = ROOT / ".venv" / "bin"
CLI_VERSION = "58.10.0"

# Never copied into the tree that is built: not part of a deployment's source.
_NOT_SOURCE = {".git", ".venv", "venv", "node_modules", ".vercel"}
# A throwaway link: `vercel build` needs one, and with `settings` present it does not
# ask the API for the project's settings.
PROJECT_JSON = {
    "projectId": "prj_buildjudge0000000000000000",
    "orgId": "team_buildjudge000000000000000",
    "settings": {"framework": None},
}
TRAMPOLINE = "vc__handler__python"
# The environment the build keeps (matched case-insensitively for the proxy variables).
_BUILD_ENV = {
    "PATH",
    "HOME",
    "USER",
    "LANG",
    "LC_ALL",
    "TMPDIR",
    "CI",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "all_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NODE_EXTRA_CA_CERTS",
    "UV_INDEX_URL",
    "UV_DEFAULT_INDEX",
    "UV_EXTRA_INDEX_URL",
}


class BuildError(RuntimeError):
    pass


# --- the build -------------------------------------------------------------------------


def source_files(root: Path = ROOT) -> list[str]:
    """Git-tracked files plus untracked, not-ignored ones, as they are on disk now."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=root,
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout.decode()
    files = []
    for rel in sorted(set(listed.split("\0"))):
        if not rel or _NOT_SOURCE & set(Path(rel).parts):
            continue
        if (root / rel).is_file():  # deleted but not yet committed: not in the tree
            files.append(rel)
    return files


def copy_tree(root: Path, dest: Path) -> int:
    files = source_files(root)
    for rel in files:
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(root / rel, target, follow_symlinks=False)
    return len(files)


@contextmanager
def _refusing_port() -> Iterator[int]:
    """A loopback port bound but not listening: connections to it fail at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield int(sock.getsockname()[1])


@dataclass(frozen=True)
class Build:
    tree: Path  # the copy that was built
    seconds: float
    log: str

    @property
    def output(self) -> Path:
        return self.tree / ".vercel" / "output"


def build(work: Path, root: Path = ROOT, timeout: float = 540.0) -> Build:
    """Copy `root` into `work/tree` and run `vercel build` there, offline."""
    if not CLI.exists():
        raise BuildError(f"the Vercel CLI is not installed: npm ci --prefix {CLI_DIR.name}")
    tree = work / "tree"
    copy_tree(root, tree)
    (tree / ".vercel").mkdir(exist_ok=True)
    (tree / ".vercel" / "project.json").write_text(json.dumps(PROJECT_JSON))
    # Only what reaching PyPI needs: the tests' settings and secrets (in os.environ
    # during a test session) must not reach the builder.
    env = {k: v for k, v in os.environ.items() if k in _BUILD_ENV or k.lower() in _BUILD_ENV}
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"  # uv and Python 3.12
    env["VERCEL_TELEMETRY_DISABLED"] = "1"
    started = time.monotonic()
    with _refusing_port() as port:
        argv = [
            str(CLI),
            "build",
            "--yes",
            "--api",
            f"http://127.0.0.1:{port}",
            "--global-config",
            str(work / "vercel-global-config"),
        ]
        proc = subprocess.Popen(
            argv,
            cwd=tree,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a timeout stops uv too, not only node
        )
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            out, _ = proc.communicate()
            raise BuildError(
                f"vercel build took over {timeout:.0f} s:\n{out.decode(errors='replace')[-4000:]}"
            ) from None
    log = out.decode(errors="replace")
    if proc.returncode != 0:
        raise BuildError(f"vercel build exited {proc.returncode}:\n{log[-4000:]}")
    return Build(tree, time.monotonic() - started, log)


# --- the bundles -----------------------------------------------------------------------


@dataclass(frozen=True)
class Bundle:
    """One built function: what Lambda would unpack for it."""

    name: str  # "health" for functions/api/health.func
    func_dir: Path
    config: dict[str, Any]
    files: dict[str, Path]  # path in the bundle -> the file it is made of

    @property
    def bytes(self) -> int:
        return sum(f.stat().st_size for f in self.files.values())

    @property
    def megabytes(self) -> float:
        return round(self.bytes / 1_000_000, 2)

    def vendored_megabytes(self, at_least: float = 0.1) -> dict[str, float]:
        """MB per top-level entry of `_vendor` (a package and its .dist-info together)."""
        sizes: dict[str, int] = {}
        for rel, source in self.files.items():
            parts = rel.split("/")
            if parts[0] == "_vendor" and len(parts) > 1:
                top = parts[1].split("-")[0].removesuffix(".py").split(".")[0]
                sizes[top] = sizes.get(top, 0) + source.stat().st_size
        ranked = sorted(sizes.items(), key=lambda kv: -kv[1])
        return {k: round(v / 1_000_000, 2) for k, v in ranked if v / 1_000_000 >= at_least}

    def layout(self, dest: Path) -> Path:
        """The bundle unpacked at `dest` (hard links where possible: nothing is shared)."""
        for rel, source in self.files.items():
            target = dest / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            try:
                os.link(source, target)
            except OSError:
                shutil.copy2(source, target)
        return dest


def bundles(output: Path) -> list[Bundle]:
    """Every function under `output/functions/api`, from its `.vc-config.json`."""
    tree = output.parent.parent
    found = []
    for func in sorted((output / "functions" / "api").rglob("*.func")):
        config = json.loads((func / ".vc-config.json").read_text())
        files = {
            p.relative_to(func).as_posix(): p
            for p in func.rglob("*")
            if p.is_file() and p.name != ".vc-config.json"
        }
        for rel, source in config.get("filePathMap", {}).items():
            path = Path(source)
            files[rel] = path if path.is_absolute() else tree / path
        name = func.relative_to(output / "functions" / "api").as_posix().removesuffix(".func")
        found.append(Bundle(name, func, config, files))
    return found


# --- running a bundle ------------------------------------------------------------------


def python312() -> str:
    """A Python 3.12 interpreter that is not the virtualenv (its packages stay out)."""
    base = getattr(sys, "_base_executable", sys.executable)
    if sys.version_info[:2] == (3, 12) and base:
        return str(base)
    found = shutil.which("python3.12")
    if found is None and (VENV_BIN / "uv").exists():
        located = subprocess.run(
            [str(VENV_BIN / "uv"), "python", "find", "3.12"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        found = located.stdout.strip() if located.returncode == 0 else None
    if not found:
        raise BuildError("no Python 3.12 (Vercel's runtime version) to run the functions with")
    return found


def bundle_env(bundle: Bundle, settings: Mapping[str, str]) -> dict[str, str]:
    """What a Lambda has: the bundle's configured environment plus the project's settings."""
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin", "LANG": "C.UTF-8", "TZ": "UTC"}
    env.update(settings)
    env.update(bundle.config.get("environment", {}))
    return env


@dataclass
class Reply:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    def header(self, name: str) -> str | None:
        values = self.header_list(name)
        return values[-1] if values else None

    def header_list(self, name: str) -> list[str]:
        return [v for k, v in self.headers if k.lower() == name.lower()]

    def json(self) -> Any:
        return json.loads(self.body)


# `-S`: no site-packages but the bundle's (the trampoline adds `_vendor` itself). The
# replies go to a copy of stdout taken first, so what the function prints cannot mix in.
_EVENT_DRIVER = """
import json, os, sys
out = os.fdopen(os.dup(1), "w")
os.dup2(2, 1)
import vc__handler__python as trampoline
out.write("{}\\n")
out.flush()
for line in sys.stdin:
    request = json.loads(line)
    if request is None:
        import sysconfig
        paths = sysconfig.get_paths()
        allowed = (os.getcwd(), paths["stdlib"], paths["platstdlib"])
        files = [getattr(m, "__file__", None) for m in list(sys.modules.values())]
        foreign = sorted(f for f in files if f and not f.startswith(allowed))
        out.write(json.dumps({"foreign": foreign}) + "\\n")
    else:
        out.write(json.dumps(trampoline.vc_handler({"body": json.dumps(request)}, None)) + "\\n")
    out.flush()
"""


class EventRunner:
    """A bundle cold-started in its own process, answering Lambda events one by one."""

    interface = "event"

    def __init__(self, root: Path, env: Mapping[str, str], timeout: float = 60.0) -> None:
        self.timeout = timeout
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self._proc = subprocess.Popen(
            [python312(), "-S", "-c", _EVENT_DRIVER],
            cwd=root,
            env=dict(env),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            text=True,
        )
        self._replies: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        self._next()  # the import (cold start) is done

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self._replies.put(line)
        self._replies.put("")

    def _send(self, message: Any) -> Any:
        stdin = self._proc.stdin
        assert stdin is not None
        stdin.write(json.dumps(message) + "\n")
        stdin.flush()
        return self._next()

    def _next(self) -> Any:
        try:
            line = self._replies.get(timeout=self.timeout)
        except queue.Empty:
            raise BuildError(f"no answer in {self.timeout} s:\n{self.logs()[-3000:]}") from None
        if not line:
            raise BuildError(f"the function's process ended:\n{self.logs()[-3000:]}")
        return json.loads(line)

    def request(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes = b""
    ) -> Reply:
        event = {
            "method": method,
            "path": path,
            "headers": dict(headers),
            "body": base64.b64encode(body).decode(),
            "encoding": "base64",
        }
        raw = self._send(event)
        data = raw.get("body") or ""
        payload = base64.b64decode(data) if raw.get("encoding") == "base64" else data.encode()
        pairs = [(k, v) for k, values in raw["headers"].items() for v in _as_list(values)]
        return Reply(int(raw["statusCode"]), pairs, payload)

    def foreign_modules(self) -> list[str]:
        """Modules loaded from outside the bundle and the standard library."""
        return list(self._send(None)["foreign"])

    def logs(self) -> str:
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace")

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._stderr.close()


def _as_list(values: Any) -> list[str]:
    return [str(v) for v in values] if isinstance(values, list) else [str(values)]


@dataclass
class _Ipc:
    """The platform's side of the runtime's IPC socket: every message it sent."""

    conn: socket.socket
    messages: list[dict[str, Any]] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)
    closed: bool = False

    def pump(self) -> None:
        buffer = b""
        while True:
            try:
                data = self.conn.recv(65536)
            except OSError:
                data = b""
            if not data:
                with self.changed:
                    self.closed = True
                    self.changed.notify_all()
                return
            buffer += data
            *complete, buffer = buffer.split(b"\0")
            with self.changed:
                self.messages.extend(json.loads(m) for m in complete if m)
                self.changed.notify_all()

    def wait_for(self, kind: str, timeout: float, request_id: int | None = None) -> dict[str, Any]:
        def match() -> dict[str, Any] | None:
            for message in self.messages:
                if message.get("type") != kind:
                    continue
                context = message.get("payload", {}).get("context", {})
                if request_id is None or context.get("requestId") == request_id:
                    return message
            return None

        with self.changed:
            found = self.changed.wait_for(lambda: match() is not None or self.closed, timeout)
            message = match()
        if not found or message is None:
            raise BuildError(f"no {kind!r} IPC message (request {request_id}) in {timeout} s")
        return message


class IpcRunner:
    """A bundle cold-started the way Vercel's production runtime starts it: over IPC."""

    interface = "ipc"

    def __init__(self, root: Path, env: Mapping[str, str], timeout: float = 60.0) -> None:
        self.timeout = timeout
        self._dir = tempfile.mkdtemp(prefix="vcipc")  # short: Unix socket paths are short
        path = os.path.join(self._dir, "ipc.sock")
        self._server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self._server.bind(path)
        self._server.listen(1)
        self._server.settimeout(timeout)
        self._output = tempfile.TemporaryFile()  # noqa: SIM115 - closed in close()
        self._proc = subprocess.Popen(
            [python312(), "-S", "-c", f"import {TRAMPOLINE}"],
            cwd=root,
            env={**env, "VERCEL_IPC_PATH": path},
            stdin=subprocess.DEVNULL,
            stdout=self._output,
            stderr=subprocess.STDOUT,
        )
        self._requests = 0
        try:
            conn, _ = self._server.accept()
        except TimeoutError:
            self.close()
            raise BuildError("the runtime never connected to VERCEL_IPC_PATH") from None
        self.ipc = _Ipc(conn)
        threading.Thread(target=self.ipc.pump, daemon=True).start()
        try:
            started = self.ipc.wait_for("server-started", timeout)
        except BuildError:
            logs = self.logs()
            self.close()
            raise BuildError(f"no server-started message:\n{logs[-3000:]}") from None
        self.port = int(started["payload"]["httpPort"])
        self.started = started["payload"]
        self._http = httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}", timeout=timeout, follow_redirects=False
        )

    def request(
        self, method: str, path: str, headers: Mapping[str, str], body: bytes = b""
    ) -> Reply:
        self._requests += 1
        request_id = self._requests
        internal = {
            "x-vercel-internal-invocation-id": f"inv-{request_id}",
            "x-vercel-internal-request-id": str(request_id),
        }
        response = self._http.request(
            method, path, headers={**headers, **internal}, content=body or None
        )
        self.ipc.wait_for("handler-started", self.timeout, request_id)
        self.ipc.wait_for("end", self.timeout, request_id)
        return Reply(response.status_code, list(response.headers.multi_items()), response.content)

    def logs(self) -> str:
        """Process output and the runtime's IPC `log` messages."""
        self._output.seek(0)
        text = self._output.read().decode(errors="replace")
        for message in list(getattr(self, "ipc", _Ipc(socket.socket())).messages):
            if message.get("type") == "log":
                encoded = message.get("payload", {}).get("message", "")
                text += base64.b64decode(encoded).decode(errors="replace")
        return text

    def close(self) -> None:
        if hasattr(self, "_http"):
            self._http.close()
        self._proc.terminate()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        if hasattr(self, "ipc"):
            self.ipc.conn.close()
        self._server.close()
        self._output.close()
        shutil.rmtree(self._dir, ignore_errors=True)


# --- command line ----------------------------------------------------------------------


def report(result: Build) -> dict[str, Any]:
    return {
        "vercel_cli": CLI_VERSION,
        "build_s": round(result.seconds, 1),
        "bundle_mb": {b.name: b.megabytes for b in bundles(result.output)},
        "vendor_mb": {b.name: b.vendored_megabytes() for b in bundles(result.output)},
    }


def main(out: TextIO = sys.stdout) -> int:
    with tempfile.TemporaryDirectory(prefix="vercel-build-") as work:
        result = build(Path(work))
        json.dump(report(result), out, indent=2)
        out.write("\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
