"""Django for the tests: settings configured once per process, and Django's own session
tests (``tests/sessions_tests`` of Django's source distribution), fetched from PyPI.

Django's test suite is not installed with Django: it ships in the sdist only. It is
downloaded once per Django version (``pip download --no-binary :all:``) into
``~/.cache/sharedsession/`` and imported from there as the package
``sessions_tests``; nothing of it is copied into this repository. Without PyPI the
tests that need it are skipped, saying why, unless ``DJANGO_SDIST_REQUIRED`` is set
(``.ci/run`` sets it): then the failure to fetch fails the run.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

import django
from django.conf import settings

from tests.support.stores import SECRET

#: Where Django's session tests are unpacked: ``<this>/sessions_tests/tests.py``.
CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "sharedsession"
#: The settings module of the Django tests' views (tests/django_tests/site.py).
URLCONF = "tests.django_tests.site"
# A shared in-memory database; one connection kept open for the whole run keeps it alive.
DATABASE = "file:sharedsession-django-tests?mode=memory&cache=shared"
#: What SHAREDSESSION is outside a test's own settings: a port nothing listens on, so a
#: test that forgot to configure its Redis fails at once instead of using a real one.
NOWHERE = {"redis_url": "redis://127.0.0.1:1/0", "redis_timeout": 0.5}

_state: dict[str, object] = {}


def session_tests() -> Path | None:
    """The folder holding ``sessions_tests`` for the installed Django, fetched if need be.

    None when it cannot be fetched (the reason: :func:`why_no_session_tests`).
    Raises instead when ``DJANGO_SDIST_REQUIRED`` is set.
    """
    if "session_tests" in _state:
        return _state["session_tests"]  # type: ignore[return-value]
    home = CACHE / f"django-{django.__version__}"
    found: Path | None = home
    if not (home / "sessions_tests" / "tests.py").is_file():
        try:
            _fetch(django.__version__, home)
        except (OSError, subprocess.SubprocessError, tarfile.TarError, ValueError) as error:
            if os.environ.get("DJANGO_SDIST_REQUIRED"):
                raise
            _state["why"] = f"Django {django.__version__}'s sdist could not be fetched from PyPI: {error}"
            found = None
    _state["session_tests"] = found
    return found


def why_no_session_tests() -> str:
    return str(_state.get("why", ""))


def _fetch(version: str, home: Path) -> None:
    """Download Django's sdist and unpack its ``tests/sessions_tests/`` into ``home``."""
    home.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="django-sdist-") as work:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps"]
        command += ["--no-binary", ":all:", "--dest", work, f"django=={version}"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=600, check=False)
        if done.returncode != 0:
            raise ValueError(f"pip download failed: {(done.stdout + done.stderr).strip()[-2000:]}")
        archives = list(Path(work).glob("*.tar.gz"))
        if len(archives) != 1:
            raise ValueError(f"expected one sdist, pip downloaded {[a.name for a in archives]}")
        staging = Path(work) / "unpacked" / "sessions_tests"
        staging.mkdir(parents=True)
        with tarfile.open(archives[0]) as archive:
            for member in archive.getmembers():
                folder, _, name = member.name.rpartition("/")
                if not member.isfile() or not folder.endswith("/tests/sessions_tests") or "/" in name:
                    continue
                source = archive.extractfile(member)
                if source is None:
                    continue
                (staging / name).write_bytes(source.read())
        if not (staging / "tests.py").is_file():
            raise ValueError(f"{archives[0].name} has no tests/sessions_tests/tests.py")
        home.mkdir(exist_ok=True)
        os.replace(staging, home / "sessions_tests")  # atomic: a half-unpacked copy is never used


def configure() -> None:
    """Configure Django for the tests (once per process) and create the auth tables."""
    if settings.configured:
        return
    tests_home = session_tests()
    if tests_home is not None:
        sys.path.insert(0, str(tests_home))
    settings.configure(
        SECRET_KEY=SECRET,
        SESSION_ENGINE="sharedsession.django",
        # The Flask and ASGI adapters' name: the three frameworks share one cookie.
        SESSION_COOKIE_NAME="session",
        SHAREDSESSION=NOWHERE,
        INSTALLED_APPS=[
            "django.contrib.contenttypes",
            "django.contrib.auth",
            "django.contrib.sessions",
            "django.contrib.messages",
            # Django's session tests define a model of their own.
            *(["sessions_tests"] if tests_home is not None else []),
        ],
        MIDDLEWARE=[
            "sharedsession.django.SessionMiddleware",
            "django.contrib.auth.middleware.AuthenticationMiddleware",
            "django.contrib.messages.middleware.MessageMiddleware",
        ],
        ROOT_URLCONF=URLCONF,
        MESSAGE_STORAGE="django.contrib.messages.storage.session.SessionStorage",
        DATABASES={"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": DATABASE}},
        DEFAULT_AUTO_FIELD="django.db.models.AutoField",
        PASSWORD_HASHERS=["django.contrib.auth.hashers.MD5PasswordHasher"],  # fast, for tests
        ALLOWED_HOSTS=["testserver", "localhost", "127.0.0.1"],
        USE_TZ=True,
    )
    _state["keeper"] = sqlite3.connect(DATABASE, uri=True)  # the in-memory database lives while it is open
    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0, interactive=False)
