"""Runs the fenced examples of Markdown files as a reader would, from a folder outside the clone.

    python run_examples.py README.md [MORE.md ...]

Every fenced block names its language. What happens to it:

| block | done with it |
|---|---|
| `sh` | run with `bash -euo pipefail` |
| `python` | a file with `def test_` runs under pytest, anything else with python |
| `rust`, `toml`, `ini` | written where a `file:` directive says (a Cargo project, pytest.ini); else parsed |
| `json` | parsed; a fixture (`{"rules": …}` or one rule) is checked with `aymara-mock check` |
| `yaml` | parsed; a compose file's images must be pinned, its `entrypoint`/`command` pass `sh -n` |
| `text` | not run; with `output`, what the block before it must print |
| `js` | browser code: must be `skip`ped (a browser test runs it); `node --check` as a module when node is on PATH |

A directive is an HTML comment on the line just above the fence, `<!-- example: D; D -->`:

- `skip: WHY` — not run (say why: a container engine, the clone itself); still syntax-checked
  (`bash -n`, `compile()`, the parsers above).
- `server` or `server: ARGS` — `aymara-mock ARGS` runs on 127.0.0.1:8000 (the default address the
  examples use) during the block, started from PATH and stopped with SIGTERM (it must exit 0).
- `file: PATH` — the block is written to PATH in the section's folder (and not run itself).
- `output` — on a `text` or `json` block: the previous block's stdout must contain its lines in
  order; `…` stands for any run of characters.
- `exit: N` — the block must exit with N (default 0).
- `needs: cargo` — cargo stays on PATH for this block (a Rust example).

All blocks under one `##` heading share a fresh folder, made outside the clone, and run in order;
a `../aymara-mock` beside that folder is the clone (what a Rust example's `path` dependency names).
PATH holds the venv this runs in (the installed wheel: `aymara-mock`, the SDK, pytest) and the
system's tools, never cargo (unless `needs: cargo`) or the clone. Every process a block starts is
stopped when it ends (its process group gets SIGTERM, then SIGKILL).

Exit status: 0 when every example passed, 1 otherwise (each failure is printed with its file and
line), 2 for a malformed file or directive.
"""

from __future__ import annotations

import configparser
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
LANGS = {"sh", "python", "rust", "toml", "ini", "json", "yaml", "text", "js"}
DIRECTIVES = {"skip", "server", "file", "output", "exit", "needs"}
BLOCK_TIMEOUT = 120  # a block that waits for something that never comes fails in time
CARGO_TIMEOUT = 900  # a Rust example compiles its crate and what only it needs


class Malformed(Exception):
    """The Markdown itself is wrong (an unknown language or directive): exit 2."""


@dataclass
class Block:
    path: Path
    line: int  # of the opening fence, 1-based
    section: str
    lang: str
    code: str
    directives: dict[str, str] = field(default_factory=dict)

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def parse(path: Path) -> list[Block]:
    lines = path.read_text().splitlines()
    blocks: list[Block] = []
    section = "(top)"
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("## "):
            section = line[3:].strip()
        fence = re.match(r"^(`{3,})(.*)$", line)
        if not fence:
            i += 1
            continue
        ticks, lang = fence.group(1), fence.group(2).strip()
        start = i
        body: list[str] = []
        i += 1
        while i < len(lines) and lines[i].rstrip() != ticks:
            body.append(lines[i])
            i += 1
        if i == len(lines):
            raise Malformed(f"{path}:{start + 1}: a fenced block is never closed")
        i += 1
        if lang not in LANGS:
            raise Malformed(
                f"{path}:{start + 1}: a fenced block's language is {lang!r}; "
                f"name one of {', '.join(sorted(LANGS))} so the runner knows what to do with it"
            )
        directives = {}
        if start > 0:
            found = re.match(r"^<!--\s*example:(.*?)-->\s*$", lines[start - 1])
            if found:
                directives = parse_directives(found.group(1), f"{path}:{start}")
        blocks.append(Block(path, start + 1, section, lang, "\n".join(body) + "\n", directives))
    return blocks


def parse_directives(text: str, where: str) -> dict[str, str]:
    out = {}
    # `;` separates directives; a `;` inside a reason (not followed by a directive's name) stays.
    known = "|".join(sorted(DIRECTIVES))
    for part in filter(None, (p.strip() for p in re.split(rf";\s*(?=(?:{known})\b)", text))):
        key, _, value = part.partition(":")
        key, value = key.strip(), value.strip()
        if key not in DIRECTIVES:
            raise Malformed(f"{where}: unknown directive {key!r} (known: {', '.join(sorted(DIRECTIVES))})")
        if key == "skip" and not value:
            raise Malformed(f"{where}: `skip` needs a reason (`skip: needs a container engine`)")
        out[key] = value
    return out


class Failure(Exception):
    pass


def output_matches(expected: str, actual: str) -> str | None:
    """None if every non-blank expected line matches an actual line, in order; else what is missing."""
    actual_lines = actual.splitlines()
    pos = 0
    for want in (l for l in expected.splitlines() if l.strip()):
        pattern = re.compile(".*".join(re.escape(p) for p in want.strip().split("…")))
        while pos < len(actual_lines) and not pattern.fullmatch(actual_lines[pos].strip()):
            pos += 1
        if pos == len(actual_lines):
            return want
        pos += 1
    return None


def clean_path(keep_cargo: bool) -> str:
    venv_bin = str(Path(sys.executable).parent)
    dirs = [venv_bin]
    for d in os.environ.get("PATH", "").split(os.pathsep):
        if not d or d == venv_bin or d.startswith(str(ROOT)) or "/target/" in f"/{d}/":
            continue
        has_cargo = (Path(d) / "cargo").exists() or (Path(d) / "rustc").exists()
        if has_cargo and not keep_cargo:
            continue
        dirs.append(d)
    return os.pathsep.join(dirs)


def environment(block: Block, scratch: Path) -> dict[str, str]:
    keep_cargo = block.directives.get("needs") == "cargo"
    env = {
        "HOME": os.environ.get("HOME", str(scratch)),
        "LANG": "C.UTF-8",
        "TMPDIR": str(scratch / "tmp"),
        "PATH": clean_path(keep_cargo),
    }
    if keep_cargo:
        # Reuse what the clone's build compiled (the same registry crates, same features):
        # the example's own package and what only it needs are compiled, nothing else.
        env["CARGO_TARGET_DIR"] = str(ROOT / "target")
        for k, v in os.environ.items():
            if k.startswith(("CARGO_", "RUSTUP_")) and k != "CARGO_TARGET_DIR":
                env[k] = v
    return env


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def run(argv: list[str], block: Block, cwd: Path, env: dict[str, str]) -> str:
    """Runs argv for a block; its stdout. Output goes to files, not pipes, so that a process the
    block left in the background (holding its stdout) cannot keep the runner waiting."""
    timeout = CARGO_TIMEOUT if block.directives.get("needs") == "cargo" else BLOCK_TIMEOUT
    with tempfile.TemporaryFile() as out_f, tempfile.TemporaryFile() as err_f:
        proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=out_f, stderr=err_f, start_new_session=True)
        try:
            proc.wait(timeout=timeout)
            timed_out = False
        except subprocess.TimeoutExpired:
            timed_out = True
        finally:
            stop_group(proc)
            proc.wait()
        out_f.seek(0)
        err_f.seek(0)
        out = out_f.read().decode(errors="replace")
        err = err_f.read().decode(errors="replace")
    if timed_out:
        raise Failure(f"did not finish within {timeout} s\nstdout:\n{out}\nstderr:\n{err}")
    want = int(block.directives.get("exit", "0"))
    if proc.returncode != want:
        raise Failure(f"exited {proc.returncode}, expected {want}\nstdout:\n{out}\nstderr:\n{err}")
    return out


class Server:
    """`aymara-mock ARGS` on the examples' default address, for one block."""

    def __init__(self, args: str, cwd: Path, env: dict[str, str]):
        self.proc = subprocess.Popen(
            ["aymara-mock", *shlex.split(args)],
            cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("aymara-mock listening on "):
            self.proc.kill()
            _, err = self.proc.communicate()
            raise Failure(f"the example's server did not start (`aymara-mock {args}`): {line!r}\n{err}")
        self.url = line.split()[-1]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            code = self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise Failure("the example's server did not stop within 15 s of SIGTERM")
        if code != 0:
            raise Failure(f"the example's server exited {code} on SIGTERM:\n{self.proc.stderr.read() if self.proc.stderr else ''}")


# --- syntax checks: what every block gets, run or not -----------------------------------------

def sh_syntax(script: str, what: str, shell: str) -> None:
    done = subprocess.run([shell, "-n"], input=script, text=True, capture_output=True)
    if done.returncode != 0:
        raise Failure(f"{what} does not pass `{shell} -n`:\n{done.stderr}")


def js_syntax(code: str) -> None:
    """Browser code, checked as an ES module (top-level `await` allowed) when node is there."""
    if shutil.which("node") is None:
        return
    with tempfile.TemporaryDirectory() as d:
        f = Path(d) / "example.mjs"
        f.write_text(code)
        done = subprocess.run(["node", "--check", str(f)], text=True, capture_output=True)
    if done.returncode != 0:
        raise Failure(f"the block does not pass `node --check`:\n{done.stderr}")


def compose_checks(doc: dict) -> None:
    services = doc.get("services")
    if not isinstance(services, dict):
        return
    for name, svc in services.items():
        if not isinstance(svc, dict):
            raise Failure(f"service {name!r} is not a mapping")
        image = svc.get("image")
        if image is not None:
            tag = image.rsplit("/", 1)[-1]
            if ":" not in tag and "@" not in image or tag.endswith(":latest"):
                raise Failure(f"service {name!r}: image {image!r} is not pinned to a version")
        for key in ("entrypoint", "command"):
            value = svc.get(key)
            if isinstance(value, str):
                argv = shlex.split(value)
            elif isinstance(value, list):
                argv = [str(v) for v in value]
            else:
                continue
            if len(argv) >= 3 and argv[0] in ("sh", "bash", "/bin/sh", "/bin/bash") and argv[1] == "-c":
                sh_syntax(argv[2], f"service {name!r}'s {key} script", "bash" if argv[0].endswith("bash") else "sh")
            if len(argv) >= 3 and Path(argv[0]).name.startswith("python") and argv[1] == "-c":
                try:
                    compile(argv[2], f"service {name!r}'s {key}", "exec")
                except SyntaxError as e:
                    raise Failure(f"service {name!r}'s {key} is not valid Python: {e}")
        deps = svc.get("depends_on")
        if isinstance(deps, dict):
            for dep, cond in deps.items():
                if dep not in services:
                    raise Failure(f"service {name!r} depends on {dep!r}, which is not a service")
        elif isinstance(deps, list):
            for dep in deps:
                if dep not in services:
                    raise Failure(f"service {name!r} depends on {dep!r}, which is not a service")


def looks_like_fixture(doc: object) -> bool:
    return isinstance(doc, dict) and ("rules" in doc or any(k in doc for k in ("respond", "fault", "pass")))


def syntax(block: Block) -> object:
    code = block.code
    try:
        if block.lang == "sh":
            sh_syntax(code, "the block", "bash")
        elif block.lang == "python":
            compile(code, block.where, "exec")
        elif block.lang == "toml":
            return tomllib.loads(code)
        elif block.lang == "ini":
            configparser.ConfigParser().read_string(code)
        elif block.lang == "json" and "output" not in block.directives:
            return json.loads(code)
        elif block.lang == "js":
            js_syntax(code)
        elif block.lang == "yaml":
            doc = yaml.safe_load(code)
            if isinstance(doc, dict):
                compose_checks(doc)
            return doc
    except Failure:
        raise
    except Exception as e:  # every parser's own error says where
        raise Failure(f"does not parse as {block.lang}: {e}")
    return None


# --- the runner -------------------------------------------------------------------------------

def run_file(path: Path, scratch: Path) -> tuple[int, list[str]]:
    blocks = parse(path)
    failures: list[str] = []
    ran = 0
    dirs: dict[str, Path] = {}
    last_stdout: str | None = None
    for block in blocks:
        if block.section not in dirs:
            d = scratch / f"{len(dirs):02d}" / "example"
            d.mkdir(parents=True)
            (d.parent / "aymara-mock").symlink_to(ROOT)
            dirs[block.section] = d
        cwd = dirs[block.section]
        (scratch / "tmp").mkdir(exist_ok=True)
        label = f"{block.where} ({block.lang}, \u00a7 {block.section})"
        try:
            doc = syntax(block)
            d = block.directives
            if "output" in d:
                if last_stdout is None:
                    raise Failure("an `output` block follows no example that ran")
                missing = output_matches(block.code, last_stdout)
                if missing is not None:
                    raise Failure(f"the example before it did not print {missing!r}; it printed:\n{last_stdout}")
                print(f"ok   {label}: output as shown")
                continue
            if "file" in d:
                target = cwd / d["file"]
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(block.code)
                if d["file"] == "Cargo.toml" and not (cwd / "Cargo.lock").exists():
                    # A head start only: the versions the clone was tested with; cargo adds the rest.
                    shutil.copy(ROOT / "Cargo.lock", cwd / "Cargo.lock")
                print(f"ok   {label}: written to {d['file']}")
                continue
            if "skip" in d:
                print(f"skip {label}: {d['skip']} (syntax checked)")
                continue
            last_stdout = None
            env = environment(block, scratch)
            if block.lang == "json":
                if looks_like_fixture(doc):
                    fixture = doc if "rules" in doc else {"rules": [doc]}
                    f = cwd / f"fixture-line-{block.line}.json"
                    f.write_text(json.dumps(fixture))
                    run(["aymara-mock", "check", f.name], block, cwd, env)
                    f.unlink()
                    ran += 1
                    print(f"ok   {label}: a valid fixture")
                continue
            if block.lang == "js":
                raise Failure("a js block runs in a browser: mark it `skip: WHY` (naming the test that runs it)")
            if block.lang not in ("sh", "python"):
                continue  # parsed above; nothing to run
            server = Server(d["server"], cwd, env) if "server" in d else None
            try:
                if block.lang == "sh":
                    last_stdout = run(["bash", "-euo", "pipefail", "-c", block.code], block, cwd, env)
                elif "def test_" in block.code:
                    name = f"test_example_line_{block.line}.py"
                    (cwd / name).write_text(block.code)
                    last_stdout = run(
                        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", name], block, cwd, env
                    )
                else:
                    name = f"example_line_{block.line}.py"
                    (cwd / name).write_text(block.code)
                    last_stdout = run([sys.executable, name], block, cwd, env)
            finally:
                if server is not None:
                    server.stop()
            ran += 1
            print(f"ok   {label}: ran")
        except Failure as e:
            failures.append(f"FAIL {label}: {e}")
            print(failures[-1])
            last_stdout = None
    return ran, failures


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    total_ran = 0
    failures: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="aymara-mock-examples-"))
    if str(base).startswith(str(ROOT)):
        print(f"examples: the scratch folder {base} is inside the clone; set TMPDIR elsewhere", file=sys.stderr)
        return 2
    try:
        for i, name in enumerate(argv):
            scratch = base / f"doc{i}"
            scratch.mkdir()
            try:
                ran, failed = run_file(Path(name), scratch)
            except Malformed as e:
                print(f"examples: {e}", file=sys.stderr)
                return 2
            total_ran += ran
            failures += failed
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print()
    for f in failures:
        print(f.splitlines()[0])
    print(f"examples: {total_ran} ran, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
