"""The student bundle: the project as students get it, with no answer inside.

Students run every lab (``redlab run NN``) and grade their own work (``redlab grade NN``)
in a VM of their own, as root: whatever the VM holds, they can read.  So the VM gets a
tarball built from the files git tracks (``git ls-files``: nothing local leaks in, no
run folder, no virtual environment), without

- every lab's ``reference/`` (the solution) and ``broken/`` folders (wrong answers that
  say which check they fail and why),
- the test suite (its expectations are the answers: ``tests/labs`` asserts the picks of
  lab 06, the timings of lab 02, ...),
- the instructors' files (CI, benchmarks, grading at scale).

What goes in is decided per top-level entry (:data:`STUDENT`, :data:`NOT_FOR_STUDENTS`):
a new top-level file or folder is refused until someone decides which side it is on, so
a new folder of answers cannot slip in.  As a last guard, no file in the bundle may have
the same bytes as a ``reference/`` file (a starter that *is* the solution).

The tarball is reproducible: entries sorted, owner root, one timestamp (the commit's),
gzip without a time stamp; the same tree gives the same bytes.
"""

import gzip
import hashlib
import io
import os
import subprocess
import tarfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from redlab.errors import ConfigError, RedlabError

REPO = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO / "dist" / "redlab-student.tar.gz"
TOP = "redlab-student"              # the folder the tarball unpacks to
MARKER = ".redlab-bundle"           # in the bundle's top folder: what it is, from which commit

# top-level entries students get (with labs/*/reference and broken/ left out)
STUDENT = ("README.md", "Makefile", "Vagrantfile", "pyproject.toml", "setup.py", ".gitignore",
           "scripts", "redlab", "controllers", "topologies", "labs",
           "drills")            # failover drills: no lab's answer, a student may rehearse them
# top-level entries students do not get, and why
NOT_FOR_STUDENTS = {
    "tests": "the test suite (its expectations are the answers)",
    ".ci": "the CI script",
    "bench": "the benchmark",
    "deploy": "grading at scale (instructors)",
    "docs": "instructors' guides",
}
ANSWER_FOLDERS = {"reference": "the labs' reference solutions",
                  "broken": "the labs' broken submissions"}


@dataclass
class Plan:
    """What goes into the bundle and what is left out (reason -> paths)."""
    files: list = field(default_factory=list)           # (path, git mode), sorted
    left_out: dict = field(default_factory=dict)


def classify(path):
    """None if ``path`` (relative, POSIX) goes to students, else why it does not.

    Raises :class:`ConfigError` for a top-level entry that is on neither list."""
    parts = PurePosixPath(path).parts
    top = parts[0]
    if top in NOT_FOR_STUDENTS:
        return NOT_FOR_STUDENTS[top]
    if top not in STUDENT:
        raise ConfigError(
            "%s is neither a student file nor an instructor's one: add %r to STUDENT or to "
            "NOT_FOR_STUDENTS in redlab/bundle.py (does it give an answer away?)" % (path, top))
    if top == "labs" and len(parts) > 2 and parts[2] in ANSWER_FOLDERS:
        return ANSWER_FOLDERS[parts[2]]
    return None


def _git(repo, *args):
    # the repository is named with -C: a GIT_DIR or GIT_INDEX_FILE of the caller (a git
    # hook running the tests) must not point git at another one
    env = {k: v for k, v in os.environ.items()
           if k not in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE")}
    try:
        done = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, check=True,
                              env=env)
    except FileNotFoundError:
        raise RedlabError("git is not installed; the student bundle is built from `git "
                          "ls-files` (apt-get install git)") from None
    except subprocess.CalledProcessError as exc:
        said = (exc.stderr.decode(errors="replace").strip().splitlines() or ["nothing"])[-1]
        raise RedlabError("%s is not a git checkout of redlab (`git %s` said: %s); build the "
                          "bundle in the project's repository, not in an unpacked bundle"
                          % (repo, " ".join(args), said)) from None
    return done.stdout


def tracked(repo):
    """The files git tracks, as (path, git mode); tracked files deleted from the working
    tree are skipped (the deletion is the tree's state)."""
    files = []
    for record in _git(repo, "ls-files", "-s", "-z").split(b"\0"):
        if not record:
            continue
        meta, path = record.decode().split("\t", 1)
        mode = meta.split()[0]
        if mode == "160000":                       # a submodule: no files of its own here
            raise ConfigError("%s is a git submodule; the student bundle cannot hold one" % path)
        if (Path(repo) / path).is_symlink() or (Path(repo) / path).exists():
            files.append((path, mode))
    return sorted(set(files))


def plan(repo=REPO):
    """Sort the tracked files into the bundle and the left-out."""
    result = Plan()
    for path, mode in tracked(repo):
        reason = classify(path)
        if reason is None:
            result.files.append((path, mode))
        else:
            result.left_out.setdefault(reason, []).append(path)
    _refuse_symlinks_out(repo, result)
    _refuse_copies_of_answers(repo, result)
    return result


def _refuse_symlinks_out(repo, result):
    included = {path for path, _ in result.files}
    for path, mode in result.files:
        if mode != "120000":
            continue
        target = (Path(repo) / path).parent / (Path(repo) / path).readlink()
        try:
            inside = target.resolve().relative_to(Path(repo).resolve()).as_posix()
        except ValueError:
            inside = None
        if inside is None or not (inside in included or
                                  any(p.startswith(inside + "/") for p in included)):
            raise ConfigError("%s is a symlink to %s, which is not in the student bundle; make "
                              "it a file or point it inside the bundle" % (path, target))


def _digest(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _refuse_copies_of_answers(repo, result):
    """A student file with the bytes of a reference file would give that answer away
    (a reference file that is the unchanged starter, like lab 01's r1.yaml, is none)."""
    answers = {}
    for path in result.left_out.get(ANSWER_FOLDERS["reference"], []):
        _labs, lab, _reference, *name = PurePosixPath(path).parts
        source = Path(repo) / path
        starter = Path(repo, "labs", lab, "submission", *name)
        if source.is_symlink() or (starter.is_file() and _digest(starter) == _digest(source)):
            continue
        answers.setdefault(_digest(source), path)
    for path, mode in result.files:
        if mode == "120000":
            continue
        same = answers.get(_digest(Path(repo) / path))
        if same:
            raise ConfigError("%s has the same content as %s: the student bundle would give "
                              "that answer away; change the starter file" % (path, same))


def describe(repo=REPO):
    """The commit the bundle is built from (``+local changes`` when the tree differs)."""
    return _git(repo, "describe", "--always", "--dirty=+local changes").decode().strip()


def marker_text(repo, result):
    lines = ["redlab student bundle",
             "built from: %s (the files git tracks, as they were in the working tree)"
             % describe(repo),
             "left out:"]
    lines += ["  %s: %d file(s)" % (reason, len(paths))
              for reason, paths in sorted(result.left_out.items())]
    return "\n".join(lines) + "\n"


def _info(name, mtime, mode, size=0, kind=tarfile.REGTYPE, link=""):
    info = tarfile.TarInfo("%s/%s" % (TOP, name) if name else TOP)
    info.type, info.mode, info.size, info.mtime, info.linkname = kind, mode, size, mtime, link
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def build(out=DEFAULT_OUT, repo=REPO):
    """Write the bundle to ``out``; return its :class:`Plan`."""
    repo, out = Path(repo), Path(out)
    result = plan(repo)
    mtime = int(_git(repo, "log", "-1", "--format=%ct").decode().strip() or 0)
    folders = sorted({str(parent) for path, _ in result.files
                      for parent in PurePosixPath(path).parents if str(parent) != "."})
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    try:
        _write(partial, repo, result, folders, mtime)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(out)
    return result


def _write(path, repo, result, folders, mtime):
    """The tarball: the top folder, every folder, the marker, then the files, in order."""
    with open(path, "wb") as raw, \
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        tar.addfile(_info("", mtime, 0o755, kind=tarfile.DIRTYPE))
        for folder in folders:
            tar.addfile(_info(folder, mtime, 0o755, kind=tarfile.DIRTYPE))
        marker = marker_text(repo, result).encode()
        tar.addfile(_info(MARKER, mtime, 0o644, len(marker)), io.BytesIO(marker))
        for name, mode in result.files:
            source = repo / name
            if mode == "120000":
                tar.addfile(_info(name, mtime, 0o777, kind=tarfile.SYMTYPE,
                                  link=str(source.readlink())))
                continue
            data = source.read_bytes()
            tar.addfile(_info(name, mtime, 0o755 if mode == "100755" else 0o644, len(data)),
                        io.BytesIO(data))
