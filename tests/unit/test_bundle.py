"""The student bundle (``redlab bundle``, ``make student-bundle``): every lab runs from it,
and nothing in it gives an answer away."""

import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path, PurePosixPath
from types import SimpleNamespace

import pytest

from redlab import bundle, labs
from redlab.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent.parent


def tracked(*patterns):
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    out = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z", *patterns],
                         capture_output=True, check=True, env=env).stdout.decode()
    return [p for p in out.split("\0") if p and (REPO / p).exists()]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bundle")
    out = folder / "redlab-student.tar.gz"
    plan = bundle.build(out)
    with tarfile.open(out) as tar:
        members = tar.getmembers()
        for member in members:          # what extractall is about to write stays inside
            parts = PurePosixPath(member.name).parts
            assert parts[0] == bundle.TOP and ".." not in parts, member.name
            assert member.isfile() or member.isdir() or member.issym(), member.name
        tar.extractall(folder)
    root = folder / bundle.TOP
    files = sorted(str(PurePosixPath(m.name).relative_to(bundle.TOP))
                   for m in members if m.isfile())
    return SimpleNamespace(path=out, plan=plan, root=root, files=files)


def test_no_reference_broken_or_test_file_is_inside(built):
    for name in built.files:
        parts = PurePosixPath(name).parts
        assert parts[0] not in ("tests", ".ci", "deploy"), name
        assert not (parts[0] == "labs" and {"reference", "broken"} & set(parts)), name
    left_out = {p for paths in built.plan.left_out.values() for p in paths}
    assert set(tracked("labs/*/reference/*", "labs/*/broken/*", "tests")) <= left_out
    for name in built.files:
        text = (built.root / name).read_bytes()
        assert b"REFERENCE SOLUTION" not in text and b"BROKEN CASE" not in text, name


def test_no_file_holds_the_bytes_of_a_reference_answer(built):
    """A reference file that differs from its starter is an answer; no bundle file may
    be a copy of it (lab 01's r1.yaml is the unchanged starter: not an answer)."""
    answers = {}
    for path in tracked("labs/*/reference/*"):
        _labs, lab, _reference, *name = PurePosixPath(path).parts
        starter = REPO.joinpath("labs", lab, "submission", *name)
        if not starter.is_file() or starter.read_bytes() != (REPO / path).read_bytes():
            answers[(REPO / path).read_bytes()] = path
    assert answers
    for name in built.files:
        assert (built.root / name).read_bytes() not in answers, name


def test_no_named_variant_of_lab_06_has_its_picks_written_anywhere(built):
    """Lab 06 stores states, not answers: no named variant's picks appear in any file (the
    guide's examples are variant 0, which no named student gets)."""
    module = labs.find("06").module
    texts = [(built.root / name).read_text(errors="replace") for name in built.files]
    for variant in range(1, len(module.variants())):
        for name, state in module.load_states(variant).items():
            picks = module.kernel_picks(state["lb_algo"], [
                (n, state["servers"][n]["weight"], state["servers"][n]["active"],
                 state["servers"][n]["inactive"]) for n in module.SERVERS],
                "H" * state["picks"], "10.0.0.201", "10.0.0.100")
            for form in (" ".join(picks), ", ".join(picks)):
                assert not any(form in text for text in texts), (variant, name, form)


def test_every_lab_has_its_code_guides_and_starter_files(built):
    lab_folders = sorted({PurePosixPath(p).parts[1] for p in tracked("labs/*/lab.py")})
    assert len(lab_folders) == len(labs.all_labs()) >= 7
    for lab in lab_folders:
        for name in ("lab.py", "guide.en.md", "guide.ja.md"):
            assert "labs/%s/%s" % (lab, name) in built.files
        starters = tracked("labs/%s/submission" % lab)
        assert starters, lab
        assert set(starters) <= set(built.files), lab
    packages = ("redlab", "controllers", "topologies")
    assert all("%s/__init__.py" % p in built.files for p in packages)
    assert "scripts/setup.sh" in built.files and "pyproject.toml" in built.files
    assert os.access(built.root / "scripts/setup.sh", os.X_OK)
    assert (built.root / bundle.MARKER).read_text().startswith("redlab student bundle")


def run_in(root, *args):
    """The venv's python with the unpacked bundle as the only redlab, as a student's.

    ``-S``: no .pth files, so the venv's editable install of this checkout cannot fill in
    a module the bundle lacks; the libraries' folders are passed on the path instead."""
    libraries = [p for p in sys.path if p and Path(p).is_dir() and Path(p).resolve() != REPO]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root)] + libraries))
    return subprocess.run([sys.executable, "-S", *args], cwd=root, env=env,
                          capture_output=True, text=True, timeout=120)


def test_redlab_runs_from_the_unpacked_bundle(built):
    where = run_in(built.root, "-c", "import redlab, controllers, topologies, redlab.labs as l;"
                   "print(redlab.__file__, controllers.__file__, l.LABS_DIR)")
    assert where.returncode == 0, where.stderr
    assert where.stdout.split() == [str(built.root / "redlab/__init__.py"),
                                    str(built.root / "controllers/__init__.py"),
                                    str(built.root / "labs")]
    listed = run_in(built.root, "-m", "redlab.cli", "run", "--list")
    assert listed.returncode == 0, listed.stderr
    for lab in labs.all_labs():
        assert "%02d %s" % (lab.number, lab.slug) in listed.stdout, listed.stdout
    # a lab's own code runs without its reference/ (lab 06's variants need no answer)
    variant = run_in(built.root, "-m", "redlab.cli", "lab", "06", "variant", "alice")
    assert variant.returncode == 0 and "student alice: variant" in variant.stdout, \
        variant.stderr
    again = run_in(built.root, "-m", "redlab.cli", "bundle", "--out", str(built.root / "x.tgz"))
    assert again.returncode == 2 and "not a git checkout" in again.stderr, again.stderr


def test_make_student_bundle_writes_the_same_bytes_again(built, tmp_path):
    out = tmp_path / "again.tar.gz"
    done = subprocess.run(["make", "-s", "-C", str(REPO), "student-bundle", "OUT=%s" % out],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "left out" in done.stdout and "reference solutions" in done.stdout
    assert out.read_bytes() == built.path.read_bytes()


def test_a_new_top_level_entry_is_refused_until_someone_sorts_it():
    assert bundle.classify("redlab/cli.py") is None
    assert bundle.classify("labs/06-scheduling/reference/predictions.yaml")
    assert bundle.classify("tests/unit/test_bundle.py")
    with pytest.raises(ConfigError, match="answers/x.yaml is neither a student file nor"):
        bundle.classify("answers/x.yaml")


def git_repo(folder, files):
    for name, text in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_text(text)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}   # its own index
    for command in (["init", "-q"], ["add", "-A"],
                    ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"]):
        subprocess.run(["git", "-C", str(folder), *command], check=True, capture_output=True,
                       env=env)
    return folder


def test_a_student_file_with_the_bytes_of_an_answer_is_refused(tmp_path):
    lab = "labs/01-x/"
    repo = git_repo(tmp_path, {lab + "lab.py": "TITLE = 'x'\n",
                               lab + "submission/a.sh": "echo todo\n",
                               lab + "submission/b.sh": "echo same\n",
                               lab + "reference/b.sh": "echo same\n",       # the starter
                               lab + "reference/a.sh": "echo answer\n",
                               lab + "guide.en.md": "echo answer\n"})
    with pytest.raises(ConfigError, match="guide.en.md has the same content as "
                                          "labs/01-x/reference/a.sh"):
        bundle.build(tmp_path / "out.tgz", repo=repo)
    (repo / lab / "guide.en.md").write_text("the guide\n")
    plan = bundle.build(tmp_path / "out.tgz", repo=repo)
    assert [p for p, _ in plan.files] == [lab + "guide.en.md", lab + "lab.py",
                                          lab + "submission/a.sh", lab + "submission/b.sh"]


def test_the_vagrant_vm_gets_the_bundle_never_the_repository():
    text = (REPO / "Vagrantfile").read_text()
    assert 'config.vm.synced_folder ".", "/vagrant", disabled: true' in text
    assert 'File.join(HERE, "dist", "redlab-student.tar.gz")' in text
    assert "make student-bundle" in text
    # the only other synced folder is the unpacked bundle's own (it has a .redlab-bundle)
    synced = [line.strip() for line in text.splitlines() if "synced_folder" in line]
    assert len(synced) == 2, synced
    body = text.split("if IN_BUNDLE\n", 1)[1].split("else", 1)[0]
    assert "config.vm.synced_folder \".\", STAGING" in body
    assert 'IN_BUNDLE = File.exist?(File.join(HERE, "%s"))' % bundle.MARKER in text


# -- what the shipped guides and README tell students ---------------------------------
# A sentence may name an instructor-only path (an answer folder, the tests) when it says so.
INSTRUCTORS_ONLY = ("instructors' repository only", "講師用リポジトリのみ")
ANSWER_PATH = re.compile(r"(?<![\w.-])(?:reference|broken)/"
                         r"|labs/[^\s`'\")]*?/(?:reference|broken)\b")
# what the reference did is the answer too ("the reference (ttl: 2) measured ...")
ANSWER_WORDS = re.compile(r"\bthe reference\b|\bmodel answer\b|模範解答|リファレンス", re.I)
FOLDERS = sorted(set(bundle.STUDENT) | set(bundle.NOT_FOR_STUDENTS))
# a path inside the project: a top-level folder and what follows (not the tail of a URL or
# of another path: `http://SERVER/deploy/index.html` is no path of ours)
PROJECT_PATH = re.compile(r"(?<![\w./~-])(?:%s)/[\w.*/-]*" % "|".join(map(re.escape, FOLDERS)),
                          re.ASCII)
LAB_PATH = re.compile(r"(?<![\w./~-])labs/[\w.*/-]*", re.ASCII)
PLACEHOLDER = re.compile(r"[A-Z]{2,}")            # labs/NN-name/submission/: any lab
SENTENCE_END = re.compile(r"(?<=[.!?])\s+|(?<=[。！？])")


def sentences(text):
    """The text as a reader meets it: each line of a code block or a table is one unit;
    prose is cut at blank lines, headings and list items, then after . ! ? and 。"""
    units, prose, fenced = [], [], False

    def flush():
        units.extend(s for s in SENTENCE_END.split(" ".join(prose)) if s.strip())
        prose.clear()

    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            flush()
            fenced = not fenced
        elif fenced or stripped.startswith("|"):
            flush()
            units.append(stripped)
        else:
            if not stripped or stripped.startswith("#") or \
                    re.match(r"(?:[-*]|\d+\.)\s", stripped):
                flush()
            if stripped:
                prose.append(stripped)
    flush()
    return units


def instructors_only(sentence):
    """Whether the sentence says that what it names is not in the student bundle (line
    breaks inside the marker, as in wrapped Japanese, do not matter)."""
    flat = re.sub(r"\s", "", sentence)
    return any(re.sub(r"\s", "", marker) in flat for marker in INSTRUCTORS_ONLY)


def names_a_shipped_file(path, shipped):
    """Whether ``path`` (a file or a folder; NN or NAME standing for any one name, * as in
    a shell) is in the bundle."""
    parts = path.rstrip("./").split("/")
    pattern = "/".join("[^/]*" if PLACEHOLDER.search(part) else
                       re.escape(part).replace(r"\*", "[^/]*") for part in parts)
    return any(re.fullmatch(pattern + "(?:/.*)?", name) for name in shipped)


def text_problems(text, shipped, paths=PROJECT_PATH):
    """The sentences of a shipped text that point a student at an answer folder or at a
    path the bundle does not have, or tell what the reference solution does, unless they
    say it is for instructors only."""
    problems = []
    for sentence in sentences(text):
        if instructors_only(sentence):
            continue
        problems += ["names an answer folder (%s): %s" % (m.group(), sentence)
                     for m in ANSWER_PATH.finditer(sentence)]
        problems += ["speaks of the answer (%s): %s" % (m.group(), sentence)
                     for m in ANSWER_WORDS.finditer(sentence)]
        problems += ["names %s, which the bundle does not have: %s" % (path, sentence)
                     for path in paths.findall(sentence)
                     if not names_a_shipped_file(path, shipped)]
    return problems


def test_shipped_guides_and_readme_point_only_at_files_students_have(built):
    """Students read the guides and README.md from the bundle: no sentence may send them
    to a lab's reference/ or broken/ (the answers), or to any path the bundle lacks, or
    tell what the reference does, unless it says it is instructors' only.  Guides are
    held to every project path; README.md, which also describes the repository to its
    developers, to paths under labs/."""
    texts = [name for name in built.files if name.endswith(".md")]
    guides = ["labs/%s/guide.%s.md" % (PurePosixPath(p).parts[1], language)
              for p in tracked("labs/*/lab.py") for language in ("en", "ja")]
    assert "README.md" in texts and set(guides) <= set(texts), texts
    problems = []
    for name in texts:
        text = (built.root / name).read_text()
        paths = PROJECT_PATH if name.startswith("labs/") else LAB_PATH
        problems += ["%s: %s" % (name, p) for p in text_problems(text, built.files, paths)]
    assert not problems, "\n".join(problems)


def test_the_text_rules_catch_answer_folders_and_missing_files():
    shipped = ["labs/04-x/lab.py", "labs/04-x/submission/takeover.sh", "topologies/t.py"]
    bad = {"sudo redlab run 04 --submission labs/04-x/reference   # the answer":
           ["answer folder (labs/04-x/reference)", "names labs/04-x/reference, which"],
           "See it fail: `…/broken/no-garp` (web2 takes VIP1).": ["answer folder (broken/)"],
           "A prediction made with the notes' formula (`broken/notes-wlc/` in the lab folder):":
           ["answer folder (broken/)"],
           "Measured by `tests/network/test_squid.py`. Then more.":
           ["names tests/network/test_squid.py, which the bundle"],
           "Edit `labs/04-x/submission/move.sh`.": ["names labs/04-x/submission/move.sh,"],
           "The reference (`ttl: 2`) measured 1.6 s.": ["speaks of the answer (The reference)"],
           "模範解答(`ttl: 2`)では1.6秒です。": ["speaks of the answer (模範解答)"]}
    for text, expected in bad.items():
        found = text_problems(text, shipped)
        assert len(found) == len(expected), (text, found)
        assert all(e in f for e, f in zip(expected, found)), (text, found)
    good = ["Edit `labs/04-x/submission/takeover.sh`; the network is `topologies/t.py`.",
            "Students edit `labs/NN-name/submission/` and `labs/*/submission/`.",
            "A PUT to `http://SERVER/deploy/index.html`; `cp -r labs/04-x/submission ~/a`.",
            "Tests run against each `reference/` solution and its `broken/` cases "
            "(instructors'\nrepository only; not in the student bundle).",
            "測定は `tests/x.py` です(このファイルは講師用\nリポジトリのみにあります)。",
            "```sh\nls labs/04-x   # the lab\n```"]
    for text in good:
        assert text_problems(text, shipped) == [], text
    # README.md is held to lab paths only; a marker covers its own sentence, not the next
    assert text_problems("See `tests/x.py`.", shipped, LAB_PATH) == []
    assert len(text_problems("Not here (instructors' repository only). Run broken/x.",
                             shipped)) == 1
