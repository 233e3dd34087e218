"""What the labs tell a student to type at ``mininet>``: their stops' commands and their
guides' code spans, read the way Mininet's CLI reads a line (shared by the unit test that
holds them to the CLI's rules and the lab test that types them)."""

import functools
import importlib.util
import re
from pathlib import Path

TOPOLOGIES = Path(__file__).resolve().parent.parent.parent / "topologies"
FENCED = re.compile(r"(?ms)^```.*?^```")
SPAN = re.compile(r"`([^`\n]+)`")
WORD = re.compile(r"^[a-z][\w.-]*$")        # a program's name (not `/`, `-n` or `…`)
# what a failed command prints at mininet>: bash, Mininet's CLI, a missing file
FAILURES = ("command not found", "Unknown command", "Please enter a command", "no such job",
            "No such file or directory", "No such device", "Usage:", "usage:")


@functools.lru_cache(maxsize=None)
def node_names():
    """Every node name of the project's topologies (built with their defaults, no root
    needed), and Mininet's controller ``c0``: the words the CLI would replace."""
    names = {"c0"}
    for path in sorted(TOPOLOGIES.glob("*.py")):
        spec = importlib.util.spec_from_file_location("topology_" + path.stem, path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        for topo in getattr(module, "topos", {}).values():
            try:
                names |= set(topo().nodes())
            except Exception:           # a topology that needs arguments (declared.py)
                continue
    return frozenset(names)


def without_comment(command):
    """The command without a trailing ``# comment`` (the shell ignores it anyway)."""
    return re.sub(r"\s+#\s.*$", "", command).strip()


def is_command(text, names):
    """Is this code span a command for ``mininet>``: ``node program ...`` or ``sh program``?"""
    words = text.split()
    if len(words) < 2 or "…" in text or "..." in text:
        return False
    first, second = words[0], words[1]
    return (first in names or first == "sh") and second not in names and bool(WORD.match(second))


def guide_commands(path, names=None):
    """The ``mininet>`` commands of a guide, in order: its fenced ``mininet> ...`` lines and
    its inline code spans that are commands (see :func:`is_command`), comments removed."""
    names = node_names() if names is None else names
    text = Path(path).read_text()
    commands = []
    for block in FENCED.findall(text):
        commands += [without_comment(line[len("mininet> "):])
                     for line in block.splitlines() if line.startswith("mininet> ")]
    outside = FENCED.sub("", text)
    commands += [span.strip() for span in SPAN.findall(outside) if is_command(span, names)]
    return commands


def template_pattern(command):
    """A stop's command template as a regex: each ``%(name)s`` / ``%(name)d`` matches one word."""
    parts = re.split(r"%\(\w+\)[sd]", command.replace("%%", "%"))
    return re.compile(r"\S+".join(re.escape(p) for p in parts) + "$")
