"""The test suite on every supported CPython: `nox` (all), `nox -s tests-3.12`
(one), `nox -- -m "not slow"` (arguments after -- go to pytest).

A version not installed is skipped, with a line saying so, not failed;
`nox --error-on-missing-interpreters` (for CI) makes it fail. Each run copies
the tree and builds it afresh, so `-R`/`--no-install` do not fit this session.
"""

import logging
import os
import pathlib
import re
import shutil
import subprocess

import nox

# As requires-python, the classifiers and [tool.cibuildwheel] build.
PYTHONS = ["3.10", "3.11", "3.12", "3.13", "3.14"]

nox.options.error_on_missing_interpreters = False  # nox's default: True only where $CI is set
nox.options.download_python = "never"  # nox's default would fetch a missing one from the net

# nox looks for pythonX.Y on PATH, but pyenv's shims answer only for the
# versions activated (pyenv global/local): put each installed one's bin/ first.
_pyenv = pathlib.Path(os.environ.get("PYENV_ROOT", "~/.pyenv")).expanduser() / "versions"
for _v in PYTHONS:
    _found = sorted((p for p in _pyenv.glob(f"{_v}.*") if re.fullmatch(rf"{_v}\.\d+", p.name)),
                    key=lambda p: int(p.name.rsplit(".", 1)[1]))
    if _found:  # the newest patch release
        os.environ["PATH"] = f"{_found[-1] / 'bin'}{os.pathsep}{os.environ['PATH']}"
    elif shutil.which(f"python{_v}") is None:
        logging.getLogger("nox").warning(
            "python%s not found (PATH, %s): tests-%s will be skipped; to run it, "
            "`pyenv install %s` (or install python%s on PATH)", _v, _pyenv, _v, _v, _v)


def _copy_of_the_tree(session):
    """The working tree (git's tracked and untracked, not ignored files) in the
    session's tmp dir. The build and the tests write into the tree they run in
    (build/, adamcore/_kernel.c and *.so, egg-info): a copy keeps them out of
    the checkout, and gives each interpreter a build of its own."""
    dest = pathlib.Path(session.create_tmp()).resolve() / "src"
    shutil.rmtree(dest, ignore_errors=True)
    names = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard",
                            "--exclude=.nox"], check=True, capture_output=True, text=True).stdout
    for name in filter(None, set(names.split("\0"))):
        if os.path.lexists(name):  # (not a file deleted but not yet committed)
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(name, dest / name, follow_symlinks=False)
    return dest


@nox.session(python=PYTHONS)
def tests(session):
    src = _copy_of_the_tree(session)
    # Editable, as the README's contributor setup: tests that start `python -c`
    # in the tree import ./adamcore, so the tree must be the installed package.
    # No torch: `pip install torch` pulls gigabytes of CUDA; its parity tests skip.
    session.install("-e", f"{src}[test]")
    session.chdir(src)
    session.run("pytest", *session.posargs)
