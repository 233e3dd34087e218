"""``redlab new-lab NAME``: a new lab's folder, ready to run, grade and test.

The scaffold (``redlab/templates/new-lab/``) is a small working lab in the one model
every lab follows: its data (``lab.yaml``), its walk-through with a CLI stop, its checks
(one static information check, one scored check), the guides in English and Japanese,
a starter submission, a reference and a broken submission, and a test that grades the
reference and the broken one as ``redlab grade`` does.  docs/writing-a-lab.md explains
each part and how to make it the lab you want.
"""

import re
from pathlib import Path

import jinja2

from redlab.errors import ConfigError
from redlab.labs import LABS_DIR

TEMPLATES = Path(__file__).resolve().parent / "templates" / "new-lab"
TESTS_DIR = LABS_DIR.parent / "tests" / "labs"
SLUG = re.compile(r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$")


def next_number(labs_dir):
    numbers = [int(p.name[:2]) for p in Path(labs_dir).iterdir()
               if p.is_dir() and re.match(r"\d\d-", p.name)] if Path(labs_dir).is_dir() else []
    return max(numbers, default=0) + 1


def new_lab(slug, labs_dir=LABS_DIR, tests_dir=None, title=None, number=None):
    """Write the lab ``NN-slug`` under ``labs_dir`` and its test under ``tests_dir``
    (default: the project's tests/labs for the project's labs, else ``labs_dir``).
    Returns ``(lab folder, test file)``; nothing is written when anything is wrong."""
    if not SLUG.match(slug or ""):
        raise ConfigError("lab name %r must be lower-case words joined by '-', e.g. "
                          "'maintenance-without-loss'" % (slug,))
    labs_dir = Path(labs_dir)
    number = number or next_number(labs_dir)
    if not 1 <= number <= 99:
        raise ConfigError("lab number %d is not between 1 and 99" % number)
    folder = labs_dir / ("%02d-%s" % (number, slug))
    taken = [p.name for p in labs_dir.glob("%02d-*" % number)] if labs_dir.is_dir() else []
    if taken:
        raise ConfigError("lab number %02d is taken by %s; choose another with --number"
                          % (number, ", ".join(taken)))
    if tests_dir is None:
        tests_dir = TESTS_DIR if labs_dir.resolve() == LABS_DIR.resolve() else labs_dir
    test_file = Path(tests_dir) / ("test_lab_%02d.py" % number)
    if test_file.exists():
        raise ConfigError("%s exists already; remove it or choose another --number" % test_file)
    values = dict(number="%02d" % number, slug=slug, folder=folder.name,
                  title=title or slug.replace("-", " ").capitalize(),
                  lab_path=repr(str(folder.resolve())))
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)),
                             keep_trailing_newline=True, undefined=jinja2.StrictUndefined)
    rendered = {}
    for template in sorted(TEMPLATES.rglob("*.j2")):
        relative = template.relative_to(TEMPLATES).as_posix()
        text = env.get_template(relative).render(**values)
        target = test_file if relative == "test_lab.py.j2" else folder / relative[:-3]
        rendered[target] = text
    # everything rendered first: a template error leaves nothing half-written
    for target, text in rendered.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
    return folder, test_file
