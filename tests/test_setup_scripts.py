"""Which Python scripts/setup.sh (and so scripts/test.sh and scripts/demo.sh) makes .venv with
(scripts/pythons.sh): $PYTHON, else a Python 3.13 on PATH or in pyenv's versions, else python3; a
Python the pins do not support is refused in one line, before anything is made.

The Pythons here are stand-ins that print a version (this machine has no Python 3.10, and which
Pythons it has must not decide what is tested); the real ones are set up in tests/test_engine_setup.py
and by scripts/test.sh itself."""

import importlib.util
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def fake_python(path, version, works=True):
    """An executable that answers scripts/pythons.sh's version question with ``version`` (or fails,
    as a pyenv shim does for a version that is installed but not selected)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"#!/bin/sh\necho {version}\n" if works else "#!/bin/sh\nexit 127\n")
    path.chmod(0o755)
    return str(path)


def tools(tmp_path):
    """A PATH folder with only the commands the scripts use: no Python of this machine is on it."""
    folder = tmp_path / "tools"
    if not folder.is_dir():
        folder.mkdir()
        for name in ("ls", "sort"):
            os.symlink(shutil.which(name), folder / name)
    return folder


def run(function, tmp_path, path=(), **env):
    """Call a scripts/pythons.sh function in bash with PATH = ``path`` + the tools only."""
    env = {"PATH": os.pathsep.join([*map(str, path), str(tools(tmp_path))]), "HOME": str(tmp_path / "home"),
           "PYENV_ROOT": str(tmp_path / "no-pyenv"), **env}
    return subprocess.run([shutil.which("bash"), "-c", f". scripts/pythons.sh && {function}"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_the_base_python_is_PYTHON_else_a_313_else_python3(tmp_path):
    bin_ = tmp_path / "bin"
    fake_python(bin_ / "python3", "3.11")
    assert run("base_python", tmp_path, [bin_]).stdout.strip() == "python3"  # no 3.13 anywhere
    in_pyenv = fake_python(tmp_path / "pyenv" / "versions" / "3.13.2" / "bin" / "python3.13", "3.13")
    fake_python(tmp_path / "pyenv" / "versions" / "3.13.10" / "bin" / "python3.13", "3.13", works=False)
    assert run("base_python", tmp_path, [bin_], PYENV_ROOT=str(tmp_path / "pyenv")).stdout.strip() == in_pyenv
    on_path = fake_python(bin_ / "python3.13", "3.13")
    assert run("base_python", tmp_path, [bin_], PYENV_ROOT=str(tmp_path / "pyenv")).stdout.strip() == on_path
    assert run("base_python", tmp_path, [bin_], PYTHON="/opt/py/bin/python3.12").stdout.strip() == "/opt/py/bin/python3.12"


def test_find_python_takes_the_newest_that_runs(tmp_path):
    """pyenv's shim for an installed but unselected version fails: the next candidate is taken."""
    shim = tmp_path / "shims"
    fake_python(shim / "python3.11", "3.11", works=False)
    versions = tmp_path / "pyenv" / "versions"
    fake_python(versions / "3.11.2" / "bin" / "python3.11", "3.11")
    newest = fake_python(versions / "3.11.10" / "bin" / "python3.11", "3.11")
    fake_python(versions / "3.12.1" / "bin" / "python3.12", "3.12")
    proc = run("find_python 3.11", tmp_path, [shim], PYENV_ROOT=str(tmp_path / "pyenv"))
    assert (proc.returncode, proc.stdout.strip()) == (0, newest)
    assert run("find_python 3.13", tmp_path, [shim], PYENV_ROOT=str(tmp_path / "pyenv")).returncode == 1


def test_setup_refuses_an_unsupported_python_in_one_line(tmp_path):
    """In a copy of the scripts, so that no .venv exists: nothing is made, one line says why."""
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True)
    for name in ("scripts/setup.sh", "scripts/pythons.sh", "requirements.txt", "requirements-dev.txt"):
        shutil.copy(ROOT / name, repo / name)
    bash = shutil.which("bash")
    env = dict(os.environ, PYTHON=fake_python(tmp_path / "bin" / "python3.10", "3.10"))
    for args in ([], ["--dev"]):
        proc = subprocess.run([bash, str(repo / "scripts" / "setup.sh"), *args], env=env, capture_output=True,
                              text=True, timeout=60)
        assert proc.returncode == 1 and proc.stdout == "", proc.stdout + proc.stderr
        assert proc.stderr.splitlines() == [f"error: {env['PYTHON']} is Python 3.10; the pinned packages need "
                                            "Python 3.11, 3.12 or 3.13 (set PYTHON to one)"]
    env["PYTHON"] = str(tmp_path / "nowhere" / "python3")
    proc = subprocess.run([bash, str(repo / "scripts" / "setup.sh")], env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.splitlines() == [f"error: cannot run Python '{env['PYTHON']}': set PYTHON to a Python 3.11, "
                                        "3.12 or 3.13"]
    assert sorted(p.name for p in repo.iterdir()) == ["requirements-dev.txt", "requirements.txt", "scripts"]


def documented(doc, needle):
    """The one command line in the document ``doc`` that holds ``needle``."""
    lines = [line for line in (ROOT / doc).read_text().splitlines() if needle in line and "/bin/python" in line]
    assert len(lines) == 1, lines
    return lines[0]


@pytest.mark.skipif(importlib.util.find_spec("bpy") is None, reason="no bpy for this Python (3.12)")
def test_the_documented_extension_commands_run(tmp_path):
    """README's build command and docs/blender.md's validate command, as written: their globs find
    the extension tool in .venv's bpy whatever its Python and Blender versions (the documented path
    named python3.11 and bpy 5.0 after both had changed)."""
    build = documented("README.md", "blender_ext.py build").replace("dist", str(tmp_path / "dist"))
    for command in (build, documented("docs/blender.md", "blender_ext.py validate")):
        proc = subprocess.run(["bash", "-c", command], cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, command + "\n" + proc.stdout + proc.stderr
    assert [p.name for p in (tmp_path / "dist").iterdir()] == ["hmp_hand_capture-0.1.0.zip"]
