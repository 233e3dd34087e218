"""The labs' Japanese guides keep one register and match their English twins.

Three things a reader notices and a reviewer misses in a diff:

- **開放 for releasing an address.** 開放 means opening (a port, a door); giving up a VIP or
  an address is 解放.  Neither guide has a reason to write 開放, so any occurrence fails.
- **Plain form in polite prose.** The guides speak to the student in です/ます.  A sentence that
  ends in plain form (だ, である, する, した, ない ...) switches register mid-text.  The check is a
  heuristic over sentence endings, documented at :func:`is_plain` and :func:`sentences`.
- **Sections that exist in one language only.** The English and Japanese guide of a lab have the
  same number of headings at each level; a section added to one and not the other breaks it.
"""

import re
from collections import Counter
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent.parent
LABS = sorted(p for p in (REPO / "labs").iterdir() if (p / "guide.ja.md").exists())

# Polite endings (です/ます and their tenses, requests, questions).  A sentence is polite when,
# once trailing punctuation and a trailing parenthesis are dropped, it ends in one of these.
POLITE = re.compile(r"(です|ます|ました|でした|ません|ませんでした|ましょう|でしょう|ください)[かねよ]?$")
# Plain-form endings: a copula (だ, である), or a verb or i-adjective in dictionary, past or
# negative form.  Used for fragments that do not end in 。 (list items) and for sentences inside
# parentheses: a noun phrase ends in a noun and passes, 「実装しないといけない」 does not.
PLAIN = re.compile(r"(だ|である|であった|だった|ない|なかった|[るうくすつむぶぐぬ]|[いしきちみびりっ]た|"
                   r"んだ|いだ)$")
SENTENCE_END = "。?!\uff1f\uff01"
OPENERS, CLOSERS = "(\uff08「『【[", ")\uff09」』】]"
TRAILING = SENTENCE_END + ":;\uff1a\uff1b "          # dropped before an ending is judged


def prose_blocks(text):
    """The guide's prose, one string per paragraph or list item, with code removed.

    Skipped: fenced code blocks, tables (lines starting with ``|``), headings, block quotes
    (``>``: the course notes quoted in their own plain form), HTML comments and a bold lead
    (``**3. r1 fails.**``: a label, like a heading).  Inline code spans become ``〔code〕`` so
    that a sentence stays a sentence around them.  Lines of one paragraph or list item are
    joined: Japanese wraps mid-sentence.
    """
    blocks, current, fenced = [], [], False
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("```"):
            fenced = not fenced
            blocks.append(current)
            current = []
            continue
        starts_item = re.match(r"([-*]|\d+\.)\s", stripped)
        skipped = fenced or not stripped or stripped.startswith(("|", "#", ">", "<!--"))
        if skipped or starts_item:
            blocks.append(current)
            current = []
        if skipped:
            continue
        if starts_item:
            stripped = stripped[starts_item.end():]
        if not current:
            stripped = re.sub(r"^\*\*[^*]+\*\*\s*", "", stripped)
        current.append(stripped)
    blocks.append(current)
    return [re.sub(r"`[^`]*`", "〔code〕", "".join(b)).replace("*", "") for b in blocks if b]


def wrapped(body):
    """Whether ``body`` is one parenthesis from its first character to its last."""
    depth = 0
    for n, char in enumerate(body):
        depth += (char in OPENERS) - (char in CLOSERS)
        if depth == 0:
            return n == len(body) - 1 and n > 0
    return False


def split_sentences(block):
    """Split at 。?! outside brackets; a sentence keeps the closing brackets that follow it."""
    found, current, depth = [], "", 0
    for char in block:
        if current and depth == 0 and current[-1] in SENTENCE_END and char not in SENTENCE_END + CLOSERS:
            found.append(current)
            current = ""
        current += char
        depth += (char in OPENERS) - (char in CLOSERS and depth > 0)
    return [s.strip() for s in found + [current] if s.strip()]


def sentences(block):
    """The block's sentences, each with whether it must be polite, parentheses unwrapped.

    A sentence that is a parenthesis of its own is judged as the sentences inside it.  The
    sentences inside a parenthesis that closes a sentence are asides: the ones closed by 。
    fail only when they end in a plain verb (noun phrases like 「Debian 12 の 5.7。」 are fine
    there); an aside's unterminated last clause (「(全プロセスが停止する)」) is not judged.
    """
    result = []
    for sentence in split_sentences(block):
        body = sentence.rstrip(SENTENCE_END + " ")
        if wrapped(body):
            result += sentences(body[1:-1])
            continue
        result.append((sentence, True))
        if body[-1:] in CLOSERS and opening(body) > 0:
            inner = split_sentences(body[opening(body) + 1:-1])
            result += [(s, False) for s in inner if s[-1] in SENTENCE_END]
    return result


def ending(sentence):
    """The sentence without closing punctuation, a trailing parenthesis and a trailing colon."""
    end = sentence.rstrip(TRAILING)
    while end[-1:] in CLOSERS and opening(end) > 0:
        end = end[:opening(end)].rstrip(TRAILING)
    return end


def opening(text):
    """Where the parenthesis that closes ``text`` opens (-1 if it does not)."""
    depth = 0
    for n in range(len(text) - 1, -1, -1):
        depth += (text[n] in CLOSERS) - (text[n] in OPENERS)
        if depth == 0:
            return n
    return -1


def is_plain(sentence, closed_must_be_polite=True):
    """Whether a sentence ends in plain form (the documented heuristic).

    A sentence closed by 。, ? or ! must end in a polite form (:data:`POLITE`): a noun before 。
    is a sentence with its verb dropped, which the guides do not write.  A fragment without
    a full stop (a list item, a label before a code block) may be a noun phrase; it fails only
    when it ends in a plain verb, adjective or copula (:data:`PLAIN`).  A sentence that ends in
    a code span (``〔code〕``) or a colon introduces what follows and is not judged.
    """
    end = ending(sentence)
    if not end or end.endswith("〔code〕") or sentence.rstrip().endswith((":", "\uff1a")):
        return False
    if POLITE.search(end):
        return False
    if not re.search(r"[ぁ-んァ-ヶ一-龯]", end):
        return False                       # no Japanese at all: a name, a number, a command
    if closed_must_be_polite and sentence.rstrip(CLOSERS + " ")[-1:] in SENTENCE_END:
        return True
    return bool(PLAIN.search(end))


def plain_sentences(text):
    """Every prose sentence of a Japanese guide that ends in plain form."""
    return [s for block in prose_blocks(text) for s, strict in sentences(block) if is_plain(s, strict)]


def heading_counts(text):
    """How many headings the guide has at each level (``#`` .. ``######``), outside code."""
    return dict(Counter(len(h) - len(h.lstrip("#")) for h in headings(text)))


def headings(text):
    """The headings outside code blocks (also shown in a failure, to find the missing one)."""
    fenced, found = False, []
    for line in text.splitlines():
        if line.strip().startswith("```"):
            fenced = not fenced
        elif not fenced and re.match(r"#{1,6}\s", line):
            found.append(line.strip())
    return found


@pytest.mark.parametrize("lab", LABS, ids=lambda p: p.name)
def test_no_kaihou_for_releasing(lab):
    for guide in sorted(lab.glob("guide.*.md")):
        lines = [n for n, line in enumerate(guide.read_text().splitlines(), 1) if "開放" in line]
        assert not lines, ("%s writes 開放 (opening) on line(s) %s: an address or a VIP is released, "
                           "write 解放" % (guide.relative_to(REPO), lines))


@pytest.mark.parametrize("lab", LABS, ids=lambda p: p.name)
def test_japanese_guide_is_polite(lab):
    guide = lab / "guide.ja.md"
    plain = plain_sentences(guide.read_text())
    assert not plain, ("%s has %d sentence(s) in plain form; write them in です/ます like the rest:\n%s"
                       % (guide.relative_to(REPO), len(plain), "\n".join("  " + s for s in plain)))


@pytest.mark.parametrize("lab", LABS, ids=lambda p: p.name)
def test_guides_have_the_same_sections(lab):
    en, ja = (lab / "guide.en.md").read_text(), (lab / "guide.ja.md").read_text()
    assert heading_counts(en) == heading_counts(ja), (
        "%s: the English and Japanese guides have different sections (headings per level %s vs %s); "
        "translate the missing section:\n  en: %s\n  ja: %s"
        % (lab.name, heading_counts(en), heading_counts(ja), headings(en), headings(ja)))


@pytest.mark.parametrize("text, plain", [
    ("これは実習です。ノートは正しい。", ["ノートは正しい。"]),
    ("- 冗長化の仕組みではない\n- 負荷分散の仕組み\n", ["冗長化の仕組みではない"]),
    ("`web2` が故障する(全プロセスが停止する)。", ["〔code〕 が故障する(全プロセスが停止する)。"]),
    ("約2秒かかります(2回試す。速い方を採ります)。", ["2回試す。"]),
    ("これは*強調*です。", []),
    ("なぜでしょう? 試してください(`exit` で続行)。", []),
    ("> ノートの引用は常体のままだ。\n\n```\nコードはだ。\n```\n| 表 | である |\n", []),
    ("次を実行します:\n`ping`\n", []),
], ids=["closed-plain", "list-item-plain", "aside-not-judged", "aside-sentence-judged", "emphasis",
        "polite-question-and-request", "quotes-code-tables-skipped", "colon-introduces"])
def test_the_heuristic(text, plain):
    """The heuristic itself: plain endings found, polite ones, quotes, code and tables not."""
    assert plain_sentences(text) == plain
