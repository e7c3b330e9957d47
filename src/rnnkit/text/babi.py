"""The bAbI tasks' files (Weston et al. 2015): stories, questions, answers, supporting facts.

The format (one file per task and split): numbered statements, and question lines that
hold the question, the answer and the IDs of the supporting statements, tab-separated; IDs
restart at 1 with each story::

    1 Mary moved to the bathroom.
    2 John went to the hallway.
    3 Where is Mary? \tbathroom\t1

Each question becomes one :class:`QAExample` whose story is every statement of its story
before it. Answers are word lists (tasks 8 and 19 give comma-separated answers, ``n,w``).
The models that answer them are :mod:`rnnkit.models.qa`'s.

>>> import tempfile, os
>>> path = os.path.join(tempfile.mkdtemp(), "qa1_train.txt")
>>> _ = open(path, "w").write("1 Mary moved to the bathroom.\\n2 John went to the hallway.\\n"
...                           "3 Where is Mary? \\tbathroom\\t1\\n")
>>> ex = read_babi(path).examples[0]
>>> ex.story, ex.question, ex.answer, ex.supporting, ex.task
([['mary', 'moved', 'to', 'the', 'bathroom'], ['john', 'went', 'to', 'the', 'hallway']], \
['where', 'is', 'mary'], ['bathroom'], [0], 1)
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rnnkit.io import RnnkitError, read_lines

__all__ = [
    "BabiData",
    "QAExample",
    "babi_files",
    "read_babi",
    "read_story",
    "split_stories",
    "task_number",
    "tokenize",
]


def tokenize(text: str) -> list[str]:
    """Lowercased words; punctuation is dropped (bAbI's sentences end in '.' or '?').

    >>> tokenize("Where is Mary? ")
    ['where', 'is', 'mary']
    """
    return re.findall(r"[a-z0-9']+", text.lower())


@dataclass
class QAExample:
    """One question with the story before it."""

    story: list[list[str]]  # the statements of its story before the question, oldest first
    question: list[str]
    answer: list[str]  # one word, or several (comma-separated lists: tasks 8 and 19)
    supporting: list[int]  # indices into ``story`` of the supporting statements
    task: int  # bAbI task number (from the file name qaN_...), 0 when unknown
    line: int  # the question's line in its file
    path: str  # its file
    story_no: int  # which story of the file (0-based)


@dataclass
class BabiData:
    """The questions of one or more bAbI files."""

    examples: list[QAExample]
    paths: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.examples)

    def __add__(self, other: BabiData) -> BabiData:
        return BabiData(self.examples + other.examples, self.paths + other.paths)

    @property
    def tasks(self) -> list[int]:
        return sorted({e.task for e in self.examples})


def task_number(path: str | Path) -> int:
    """N of a bAbI file name ``qaN_...``, else 0.

    >>> task_number("en/qa13_compound-coreference_test.txt"), task_number("story.txt")
    (13, 0)
    """
    m = re.match(r"qa(\d+)_", Path(path).name)
    return int(m.group(1)) if m else 0


def read_babi(path: str | Path, task: int | None = None) -> BabiData:
    """Read one bAbI file (plain or gzip); ``task`` defaults to N of a name ``qaN_...``.

    Raises:
        RnnkitError: naming the file and line, for a line that is not ``ID text``, an ID out
            of sequence, a question line without answer fields, an empty statement, question
            or answer, a supporting-fact ID that is not an earlier statement of the same
            story, a question before any statement of its story, or a file without questions.

    Example:
        >>> import tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "bad.txt")
        >>> _ = open(path, "w").write("1 Where is Mary?\\tbathroom\\t1\\n")
        >>> read_babi(path)
        Traceback (most recent call last):
        rnnkit.io.RnnkitError: ...bad.txt:1: question before any statement of its story
    """
    where = str(path)
    lines = read_lines(path, encoding="utf-8")
    task = task_number(path) if task is None else task
    examples: list[QAExample] = []
    story: list[list[str]] = []
    ids: dict[int, int] = {}  # statement ID -> index in story
    prev, story_no = 0, -1
    for lineno, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        m = re.match(r"\s*(\d{1,18}) (.*)$", line)  # int() of 4300+ digits would raise
        if m is None:
            raise RnnkitError(f"{where}:{lineno}: expected 'ID text' (a number, a space, a "
                              f"sentence), got {line[:50]!r}")  # fmt: skip
        sid, rest = int(m.group(1)), m.group(2)
        if sid == 1:
            story, ids, story_no = [], {}, story_no + 1
        elif prev == 0:
            raise RnnkitError(f"{where}:{lineno}: the first line must have ID 1, got {sid}")
        elif sid != prev + 1:
            raise RnnkitError(f"{where}:{lineno}: ID {sid} does not follow {prev} (IDs count "
                              "1, 2, 3, ... and restart at 1 with each story)")  # fmt: skip
        prev = sid
        if "\t" not in rest:
            words = tokenize(rest)
            if not words:
                raise RnnkitError(f"{where}:{lineno}: empty statement")
            ids[sid] = len(story)
            story.append(words)
            continue
        fields_ = rest.split("\t")
        if len(fields_) not in (2, 3):
            raise RnnkitError(f"{where}:{lineno}: a question line holds 'question<TAB>answer"
                              f"<TAB>supporting IDs', got {len(fields_)} tab-separated "
                              "fields")  # fmt: skip
        question = tokenize(fields_[0])
        answer = [a.strip().lower() for a in fields_[1].split(",")]
        if not question:
            raise RnnkitError(f"{where}:{lineno}: empty question")
        if not all(answer) or any(" " in a for a in answer):
            raise RnnkitError(f"{where}:{lineno}: expected an answer of words separated by "
                              f"commas, got {fields_[1]!r}")  # fmt: skip
        if not story:
            raise RnnkitError(f"{where}:{lineno}: question before any statement of its story")
        support = []
        for tok in fields_[2].split() if len(fields_) == 3 else []:
            if not tok.isdigit() or len(tok) > 18 or int(tok) not in ids:
                raise RnnkitError(f"{where}:{lineno}: supporting fact {tok!r} is not the ID of "
                                  "an earlier statement of this story")  # fmt: skip
            support.append(ids[int(tok)])
        examples.append(QAExample(list(story), question, answer, support, task, lineno, where,
                                  story_no))  # fmt: skip
    if not examples:
        raise RnnkitError(f"{where}: holds no questions (lines 'ID question<TAB>answer"
                          "<TAB>supporting IDs')")  # fmt: skip
    return BabiData(examples, [where])


def read_story(path: str | Path) -> list[list[str]]:
    """A story for :meth:`QAModel` to answer questions about: one statement per line.

    A leading statement ID (bAbI's numbering) is dropped, question lines (with a tab) and
    blank lines are skipped.

    >>> import tempfile, os
    >>> path = os.path.join(tempfile.mkdtemp(), "story.txt")
    >>> _ = open(path, "w").write("1 Mary moved to the bathroom.\\nJohn went home.\\n")
    >>> read_story(path)
    [['mary', 'moved', 'to', 'the', 'bathroom'], ['john', 'went', 'home']]
    """
    story = []
    for line in read_lines(path, encoding="utf-8"):
        if "\t" in line or not line.strip():
            continue
        words = tokenize(re.sub(r"^\s*\d+ ", "", line))
        if words:
            story.append(words)
    if not story:
        raise RnnkitError(f"{path}: holds no statements (one sentence per line)")
    return story


def babi_files(paths: Sequence[str | Path], task: str | int, split: str) -> list[Path]:
    """The bAbI files named by ``paths``: a file stands for itself; a directory gives its
    ``qaN_*_{split}.txt`` (or ``.txt.gz``) files for task N (``task="all"``: every task found).

    Raises RnnkitError for a missing path, a directory without the task's file, or a task
    that is neither a number in 1..20 nor ``all``.
    """
    if str(task) != "all" and not (str(task).isdigit() and 1 <= int(task) <= 20):
        raise RnnkitError(f"--task: expected a number in 1..20 or 'all', got {task!r}")
    out: list[Path] = []
    for p in map(Path, paths):
        if not p.exists():
            raise RnnkitError(f"{p}: no such file or directory")
        if p.is_file():
            out.append(p)
            continue
        found = sorted(
            (f for f in p.iterdir() if re.fullmatch(rf"qa\d+_.*_{split}\.txt(\.gz)?", f.name)),
            key=task_number,
        )
        if str(task) != "all":
            found = [f for f in found if task_number(f) == int(task)]
        if not found:
            which = "any task" if str(task) == "all" else f"task {task}"
            raise RnnkitError(f"{p}: no {split} file of {which} (expected names like "
                              f"qa1_single-supporting-fact_{split}.txt)")  # fmt: skip
        out += found
    return out


def split_stories(data: BabiData, frac: float) -> tuple[BabiData, BabiData]:
    """Hold out the last ``frac`` of the stories of each file (at least one) for validation,
    as bAbI's own ``en-valid`` split does; questions of one story stay together.

    >>> exs = [QAExample([["a"]], ["q"], ["x"], [0], 1, i, "f", i // 2) for i in range(10)]
    >>> train, valid = split_stories(BabiData(exs), 0.2)
    >>> len(train), [e.story_no for e in valid.examples]
    (8, [4, 4])
    """
    keep, held = [], []
    by_file: dict[str, list[QAExample]] = {}
    for e in data.examples:
        by_file.setdefault(e.path, []).append(e)
    for path, exs in by_file.items():
        stories = sorted({e.story_no for e in exs})
        k = max(1, int(round(len(stories) * frac)))
        if k >= len(stories):
            raise RnnkitError(f"{path}: --valid-frac {frac} leaves no training stories of "
                              f"{len(stories)}")  # fmt: skip
        cut = stories[-k]
        keep += [e for e in exs if e.story_no < cut]
        held += [e for e in exs if e.story_no >= cut]
    return BabiData(keep, data.paths), BabiData(held, data.paths)
