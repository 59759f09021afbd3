"""``AymaraMock``: the bundled ``aymara-mock`` binary run as a sidecar (README "As a sidecar")."""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import sysconfig
import tempfile
import threading
from pathlib import Path
from typing import IO, Any, Dict, Iterable, List, Mapping, Optional, Sequence, Union

from ._admin import AdminClient

__all__ = ["AymaraMock", "AymaraMockError", "find_binary"]

StrPath = Union[str, "os.PathLike[str]"]

# The text log's `seed=7`, or the JSON log's `"seed":7`.
SEED_IN_LOG = re.compile(r'\bseed"?[=:]\s*"?(\d+)')
READY_LINE = re.compile(r"^aymara-mock listening on (http://[^\s]+:(\d+))\s*$")
BINARY_NAME = "aymara-mock" + (".exe" if sys.platform == "win32" else "")
REAPER = Path(__file__).with_name("_reaper.py")

#: Flags whose value is a credential: never printed (start errors, :meth:`AymaraMock.stderr`).
SECRET_FLAGS = ("--api-key", "--bearer-token", "--admin-token", "--presign-secret")
REDACTED = "[redacted]"
#: Variable names whose value is a credential, for the same reason.
SECRET_ENV = re.compile(r"KEY|TOKEN|SECRET|PASSWORD|PASSWD", re.IGNORECASE)


class AymaraMockError(RuntimeError):
    """The emulator did not start, or did not stop cleanly (its stderr is in the message)."""


def find_binary() -> Path:
    """The ``aymara-mock`` binary to run: ``$AYMARA_MOCK_BIN`` if set, else the one this
    package's wheel installed (the scripts directory of this interpreter's environment, or of
    the user scheme), else the first on ``PATH``."""
    env = os.environ.get("AYMARA_MOCK_BIN")
    if env:
        return Path(env)
    candidates = [Path(sysconfig.get_path("scripts")) / BINARY_NAME]
    user_scheme = f"{os.name}_user"
    if user_scheme in sysconfig.get_scheme_names():
        candidates.append(Path(sysconfig.get_path("scripts", scheme=user_scheme)) / BINARY_NAME)
    # A venv's python may be a symlink out of it: its bin/ next to sys.executable counts too.
    candidates.append(Path(sys.executable).parent / BINARY_NAME)
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    on_path = shutil.which(BINARY_NAME)
    if on_path:
        return Path(on_path)
    raise AymaraMockError(
        f"{BINARY_NAME} not found (looked in {', '.join(str(c.parent) for c in candidates)} "
        "and on PATH): install the aymara-mock wheel, or set AYMARA_MOCK_BIN"
    )


def _size(value: Union[int, str]) -> str:
    return str(value)


def redact_argv(argv: Sequence[str]) -> List[str]:
    """``argv`` with the value of every credential flag (:data:`SECRET_FLAGS`, as ``--flag V``
    or ``--flag=V``) replaced by ``[redacted]``: what an error message may print."""
    out: List[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append(REDACTED)
            hide_next = False
            continue
        flag, eq, _ = arg.partition("=")
        if flag in SECRET_FLAGS:
            if eq:
                out.append(f"{flag}={REDACTED}")
            else:
                out.append(arg)
                hide_next = True
        else:
            out.append(arg)
    return out


def _secret_values(argv: Sequence[str], env: Mapping[str, str]) -> List[str]:
    """The credentials given to a server, by flag or ``AYMARA_MOCK_*`` variable (lists are
    comma-separated), to scrub from its log. Shorter than 4 characters: left alone, as
    replacing every ``k`` of a log would hide the log, not a key."""
    values = []
    for before, arg in zip([""] + list(argv), argv):
        flag, eq, value = arg.partition("=")
        if before in SECRET_FLAGS:
            values.append(arg)
        elif flag in SECRET_FLAGS and eq:
            values.append(value)
    for name, value in env.items():
        if name.startswith("AYMARA_MOCK_") and SECRET_ENV.search(name[len("AYMARA_MOCK_"):]):
            values += value.split(",")
    return sorted({v.strip() for v in values if len(v.strip()) >= 4}, key=len, reverse=True)


def server_environment(
    extra: Optional[Mapping[str, Optional[str]]] = None,
    base: Optional[Mapping[str, str]] = None,
) -> Dict[str, str]:
    """The environment a server is started with: ``base`` (default: this process's),
    ``AYMARA_MOCK_*`` variables included, updated with ``extra`` (a ``None`` value removes a
    variable). Every ``serve`` flag has an ``AYMARA_MOCK_<NAME>`` twin, so
    ``AYMARA_MOCK_VIDEO_PROCESSING_TIME=0s pytest`` reaches the server; a flag given on the
    command line (an option of :class:`AymaraMock`) wins over its variable."""
    env = dict(os.environ if base is None else base)
    for key, value in (extra or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    return env


def describe_environment(env: Mapping[str, str]) -> str:
    """The ``AYMARA_MOCK_*`` variables of ``env`` a server reads, credentials redacted:
    ``AYMARA_MOCK_SEED=7 AYMARA_MOCK_API_KEYS=[redacted]`` (empty if none)."""
    return " ".join(
        f"{k}={REDACTED if SECRET_ENV.search(k[len('AYMARA_MOCK_'):]) else v}"
        for k, v in sorted(env.items())
        if k.startswith("AYMARA_MOCK_") and k != "AYMARA_MOCK_BIN"
    )


class AymaraMock(AdminClient):
    """One ``aymara-mock`` process on a free port of 127.0.0.1, with its own storage.

    >>> with AymaraMock(scenarios=["retry-then-succeed"], seed=7) as mock:
    ...     client = AymaraAI(api_key="k", base_url=mock.url)        # doctest: +SKIP
    ...     client.files.upload(file=b"hello")                        # doctest: +SKIP
    ...     assert [r["status"] for r in mock.requests()] == [503, 503, 200]  # doctest: +SKIP

    The keyword arguments are the ``serve`` options (``aymara-mock serve --help``):

    - ``scenarios``: names of shipped scenarios (``--scenario NAME``, in order, after the
      ``fixtures``; ``aymara-mock scenarios`` lists them);
    - ``fixtures``: fixture files or directories (``--fixtures``, in order);
    - ``api_keys`` / ``bearer_tokens``: the only credentials accepted (default: any non-empty);
      ``no_auth``: check none;
    - ``seed``: seed of the RNG behind rule probabilities (default: random, logged);
    - ``max_upload_size`` / ``max_storage``: ``"512MiB"``, ``"10MB"``, a number of bytes;
    - ``journal_size``, ``public_url``, ``bucket``, ``watch``, ``log_level``;
    - ``admin_token``: the admin API requires it; :attr:`admin` sends it;
    - ``cors_origins``: origins whose web pages may call the API from a browser
      (``--cors-origin``, README "From a web app"): ``"http://localhost:5173"``, ``"*"``,
      ``"loopback"`` (the default) or ``"none"``;
    - ``storage_dir``: where uploads land. Default ``None``: a fresh temp dir that is removed
      after :meth:`stop`. A path: used and kept. ``False``: let the server make (and remove) its
      own temp dir, unknown to this object (``storage_dir`` is then ``None``);
    - ``extra_args``: any other flags, appended as given; ``binary``: the executable
      (default :func:`find_binary`); ``env``: environment variables to set (``None``: unset).

    The server gets this process's environment, ``AYMARA_MOCK_*`` variables included (each is
    the twin of a ``serve`` flag: ``AYMARA_MOCK_VIDEO_PROCESSING_TIME=0s``), updated with
    ``env``. An option given here is a command-line flag, which wins over its variable.
    ``AYMARA_MOCK_ADMIN_TOKEN`` is sent by the admin client when ``admin_token`` is not given.
    Error messages never show the values of ``--api-key``, ``--bearer-token``,
    ``--admin-token`` or ``--presign-secret``.

    If this process dies without stopping the server (SIGKILL, or SIGTERM, of pytest), a small
    watcher process started with it stops the server and removes its temp storage.

    :meth:`start` (or ``with``) waits for its one stdout line ``aymara-mock listening on
    http://127.0.0.1:PORT``; :meth:`stop` sends SIGTERM and raises :class:`AymaraMockError`
    unless it exits 0. It is an :class:`AdminClient` of its own server: ``mock.add_rule(…)``,
    ``mock.requests()``, ``mock.wait_for_requests(3)``, ``mock.assert_uploaded_once(sha)`` ….
    """

    def __init__(
        self,
        *,
        fixtures: Union[StrPath, Iterable[StrPath]] = (),
        scenarios: Union[str, Iterable[str]] = (),
        api_keys: Iterable[str] = (),
        bearer_tokens: Iterable[str] = (),
        no_auth: bool = False,
        seed: Optional[int] = None,
        max_upload_size: Union[int, str, None] = None,
        max_storage: Union[int, str, None] = None,
        journal_size: Optional[int] = None,
        admin_token: Optional[str] = None,
        cors_origins: Union[str, Iterable[str]] = (),
        public_url: Optional[str] = None,
        bucket: Optional[str] = None,
        watch: bool = False,
        log_level: Optional[str] = None,
        storage_dir: Union[StrPath, None, bool] = None,
        extra_args: Sequence[str] = (),
        binary: Optional[StrPath] = None,
        env: Optional[Mapping[str, Optional[str]]] = None,
        start_timeout: float = 30.0,
        stop_timeout: float = 20.0,
    ) -> None:
        if isinstance(fixtures, (str, os.PathLike)):
            fixtures = [fixtures]
        self.fixtures: List[Path] = [Path(f) for f in fixtures]
        if isinstance(scenarios, str):
            scenarios = [scenarios]
        #: the ``scenarios`` given (:meth:`scenarios` lists those the binary ships)
        self.scenario_names: List[str] = list(scenarios)
        self.admin_token = admin_token
        self.binary = Path(binary) if binary is not None else None
        self.start_timeout = start_timeout
        self.stop_timeout = stop_timeout
        self._extra_env = dict(env or {})
        self._storage_option = storage_dir

        args: List[str] = []
        for name in self.scenario_names:
            args += ["--scenario", name]
        for f in self.fixtures:
            args += ["--fixtures", str(f)]
        for key in api_keys:
            args += ["--api-key", key]
        for token in bearer_tokens:
            args += ["--bearer-token", token]
        if no_auth:
            args.append("--no-auth")
        if seed is not None:
            args += ["--seed", str(seed)]
        if max_upload_size is not None:
            args += ["--max-upload-size", _size(max_upload_size)]
        if max_storage is not None:
            args += ["--max-storage", _size(max_storage)]
        if journal_size is not None:
            args += ["--journal-size", str(journal_size)]
        if admin_token is not None:
            args += ["--admin-token", admin_token]
        if isinstance(cors_origins, str):
            cors_origins = [cors_origins]
        for origin in cors_origins:
            args += ["--cors-origin", origin]
        if public_url is not None:
            args += ["--public-url", public_url]
        if bucket is not None:
            args += ["--bucket", bucket]
        if watch:
            args.append("--watch")
        if log_level is not None:
            args += ["--log-level", log_level]
        self._args = args + list(extra_args)

        self.url: str = ""
        self.port: int = 0
        self.storage_dir: Optional[Path] = None
        self.returncode: Optional[int] = None
        #: anything the server printed on stdout after its ready line (nothing, normally)
        self.extra_stdout: str = ""
        self._proc: Optional[subprocess.Popen[str]] = None
        self._workdir: Optional[tempfile.TemporaryDirectory[str]] = None
        self._stderr: Optional[IO[bytes]] = None
        self._stderr_path: Optional[Path] = None
        self._reaper: Optional[subprocess.Popen[bytes]] = None
        self.base_url = ""
        self._http = None

    def __repr__(self) -> str:
        state = self.url or "not started"
        if self.returncode is not None:
            state += f", exited {self.returncode}"
        return f"<AymaraMock {state}>"

    # -- life cycle --------------------------------------------------------------------------

    @property
    def argv(self) -> List[str]:
        """The command line the server is (or will be) started with."""
        binary = self.binary if self.binary is not None else find_binary()
        argv = [str(binary), "serve", "--host", "127.0.0.1", "--port", "0"]
        if self.storage_dir is not None:
            argv += ["--storage-dir", str(self.storage_dir)]
        return argv + self._args

    def start(self) -> "AymaraMock":
        """Start the process and wait until it listens; returns ``self``."""
        if self._proc is not None:
            raise AymaraMockError("this AymaraMock was already started")
        binary = self.binary if self.binary is not None else find_binary()
        if not binary.is_file() or not os.access(binary, os.X_OK):
            raise AymaraMockError(
                f"aymara-mock binary not found at {binary} (not an executable file)"
            )
        self.binary = binary
        self._workdir = tempfile.TemporaryDirectory(prefix="aymara-mock-")
        work = Path(self._workdir.name)
        if self._storage_option is None or self._storage_option is True:
            self.storage_dir = work / "storage"
        elif self._storage_option is not False:
            self.storage_dir = Path(self._storage_option)
        self._stderr_path = work / "stderr.log"
        self._stderr = open(self._stderr_path, "wb")
        env = server_environment(self._extra_env)
        if self.admin_token is None and env.get("AYMARA_MOCK_ADMIN_TOKEN"):
            self.admin_token = env["AYMARA_MOCK_ADMIN_TOKEN"]
        try:
            self._proc = subprocess.Popen(
                self.argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=self._stderr,
                env=env,
                text=True,
            )
        except BaseException:
            self._cleanup()
            raise
        try:
            self._start_reaper(work)
            self.url = self._read_ready_line()
        except BaseException:
            self._proc.kill()
            self._proc.wait()
            self.returncode = self._proc.returncode
            self._close_pipes()
            self._cleanup()
            raise
        self.port = int(self.url.rsplit(":", 1)[1])
        self._connect(self.url, self.admin_token)
        return self

    def _start_reaper(self, work: Path) -> None:
        """The watcher that stops the server and removes ``work`` if this process dies first
        (``_reaper.py``). POSIX only; skipped when there is no interpreter to run it with."""
        if os.name != "posix" or not sys.executable or self._proc is None:
            return
        self._reaper = subprocess.Popen(
            [sys.executable, "-I", str(REAPER), str(self._proc.pid), str(work)],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # out of reach of a signal to this process group
        )

    def _stop_reaper(self) -> None:
        """Tell the watcher that this process stopped the server and cleans up itself."""
        reaper, self._reaper = self._reaper, None
        if reaper is None or reaper.stdin is None:
            return
        try:
            reaper.stdin.write(b"stopped")
            reaper.stdin.close()
        except OSError:
            pass  # it is gone already
        try:
            reaper.wait(timeout=5)
        except subprocess.TimeoutExpired:
            reaper.kill()
            reaper.wait()

    def _read_ready_line(self) -> str:
        assert self._proc is not None and self._proc.stdout is not None
        stdout = self._proc.stdout
        lines: "queue.Queue[str]" = queue.Queue()
        # readline() has no timeout; a thread gives it one. It ends with the line or at EOF.
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        try:
            line: Optional[str] = lines.get(timeout=self.start_timeout)
        except queue.Empty:
            line = None
        match = READY_LINE.match(line) if line else None
        if match is None:
            if line is None:
                why = f"no ready line within {self.start_timeout}s"
            elif line == "":
                self._proc.wait(timeout=self.stop_timeout)
                why = f"it exited with code {self._proc.returncode} before listening"
            else:
                why = f"unexpected first line {line!r}"
            raise AymaraMockError(f"aymara-mock did not start: {why}\n{self._describe()}")
        return match.group(1)

    def stop(self, *, check: bool = True) -> int:
        """SIGTERM, wait for the exit, remove the temp storage; returns the exit code (-9 if it
        had to be killed after ``stop_timeout``). With ``check``, raise :class:`AymaraMockError`
        unless the code is 0. Calling it again returns the same code."""
        if self._proc is None:
            raise AymaraMockError("this AymaraMock was never started")
        if self.returncode is None:
            AdminClient.close(self)
            self._http = None
            if self._proc.poll() is None:
                self._proc.send_signal(signal.SIGTERM)
            try:
                self.returncode = self._proc.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait()
                self.returncode = -9
            self._close_pipes()
            if check and self.returncode != 0:
                message = f"aymara-mock exited with code {self.returncode}\n{self._describe()}"
                self._cleanup()
                raise AymaraMockError(message)
            self._cleanup()
        return self.returncode

    def _close_pipes(self) -> None:
        assert self._proc is not None
        if self._proc.stdout is not None:
            self.extra_stdout = self._proc.stdout.read()
            self._proc.stdout.close()
        if self._stderr is not None:
            self._stderr.close()

    def _cleanup(self) -> None:
        """Keep the stderr text, then remove the work dir (and the temp storage in it)."""
        self._stderr_text = self._read_stderr()
        self._stop_reaper()
        if self._workdir is not None:
            self._workdir.cleanup()
            self._workdir = None

    def _read_stderr(self) -> str:
        if self._stderr_path is not None and self._stderr_path.exists():
            if self._stderr is not None and not self._stderr.closed:
                self._stderr.flush()
            return self._stderr_path.read_text(errors="replace")
        return getattr(self, "_stderr_text", "")

    def stderr(self, chars: int = 4000) -> str:
        """The last ``chars`` characters the server logged (its logs go to stderr only), with
        the values of credential flags redacted."""
        text = self._read_stderr()[-chars:]
        for secret in _secret_values(self._args, server_environment(self._extra_env)):
            text = text.replace(secret, REDACTED)
        return text

    def _describe(self) -> str:
        argv = " ".join(redact_argv(self.argv)) if self._proc is not None else "?"
        env = describe_environment(server_environment(self._extra_env))
        env_line = f"environment: {env}\n" if env else ""
        return f"command: {argv}\n{env_line}stderr:\n{self.stderr() or '(empty)'}"

    @property
    def seed(self) -> Optional[int]:
        """The seed in use (given, or the random one the server logged at start): start a
        server with ``seed=`` this to replay a run whose rules have a ``probability``."""
        match = SEED_IN_LOG.search(self._read_stderr()[:4000])
        return int(match.group(1)) if match else None

    @property
    def pid(self) -> int:
        """The server's process id."""
        if self._proc is None:
            raise AymaraMockError("not started")
        return self._proc.pid

    def alive(self) -> bool:
        """Whether the process is running."""
        return self._proc is not None and self._proc.poll() is None

    def __enter__(self) -> "AymaraMock":
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        # A failure inside the block is the interesting one: do not hide it behind ours.
        self.stop(check=exc_info[0] is None)

    def close(self) -> None:
        """The same as :meth:`stop`."""
        self.stop()

    def env(self, api_key: str = "test-key") -> Dict[str, str]:
        """Environment variables that point the official SDK (and code built on it) here."""
        return {"AYMARA_AI_BASE_URL": self.url, "AYMARA_AI_API_KEY": api_key}
