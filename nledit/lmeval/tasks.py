"""The offline lm-evaluation-harness tasks of nledit: ``nledit_mmlu`` and ``nledit_wikitext``.

The YAML files shipped in ``nledit/tasks`` are templates. ``prepare_tasks`` fills in absolute
paths for one data directory and returns the folder to pass as ``--include_path``.

Expected data layout (``data_dir``)::

    mmlu/test.jsonl, mmlu/dev.jsonl   {"subject", "question", "choices": [4 str], "answer": 0-3}
    wikitext2/wiki.test.raw           WikiText-2 raw test file; articles start with " = Title = "
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterable, Mapping, Sequence
from importlib import resources
from pathlib import Path
from string import Template
from typing import Any

from ..errors import NleditError

TASK_MMLU = "nledit_mmlu"
TASK_WIKITEXT = "nledit_wikitext"
DEFAULT_TASKS = (TASK_MMLU, TASK_WIKITEXT)
# Short names accepted by ``resolve_task_names`` (for ``nledit eval --tasks mmlu,wikitext``).
TASK_ALIASES = {"mmlu": TASK_MMLU, "wikitext": TASK_WIKITEXT}
MMLU_TEST = Path("mmlu/test.jsonl")
MMLU_DEV = Path("mmlu/dev.jsonl")
WIKITEXT_TEST = Path("wikitext2/wiki.test.raw")

_INCLUDE_DIR = "lm_eval_tasks"
_MMLU_DESCRIPTION = "The following are multiple choice questions (with answers) about"
_MARKER = ".nledit_tasks"
_SUBJECT = re.compile(r"[a-z0-9_]+")
_TITLE = re.compile(r" = (?P<title>[^=].*?) = ")
# WikiText-2 raw is tokenised: "guest @-@ starring", "Teddy 's", "( song )", '" Craig "'.
_DETOKENISE: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r" @([-,.])@ "), r"\1"),
    (re.compile(r"(?<=\w) '(s|t|d|m|ll|re|ve)\b"), r"'\1"),
    (re.compile(r"(?<=s) ' (?=\S)"), "' "),
    (re.compile(r" ([.,;:!?%)\]}°])"), r"\1"),
    (re.compile(r"([(\[{]) "), r"\1"),
    (re.compile(r'" ([^"\n]*?) "'), r'"\1"'),
    (re.compile(r"(?<==) (?==)"), ""),
    (re.compile(r"^ +| +$", re.MULTILINE), ""),
)


_Rows = list[dict[str, Any]]


class TaskDataError(NleditError, ValueError):
    """The data directory cannot back the requested tasks; the message names the file."""


def resolve_task_names(names: Iterable[str]) -> list[str]:
    """Map the short names ``mmlu``/``wikitext`` to the offline tasks; keep other names as given."""
    return [TASK_ALIASES.get(name.strip(), name.strip()) for name in names if name.strip()]


# ---------------------------------------------------------------- task folder


def prepare_tasks(
    data_dir: Path,
    work_dir: Path,
    subjects: list[str] | None = None,
    *,
    tasks: Sequence[str] = DEFAULT_TASKS,
) -> Path:
    """Write the offline task folder for ``data_dir`` under ``work_dir``; return the include path.

    ``subjects`` restricts ``nledit_mmlu`` to some MMLU subjects (fast runs); ``tasks`` selects
    which of ``nledit_mmlu`` / ``nledit_wikitext`` to write, so only their files are required.
    Data files derived from ``data_dir`` (one JSON Lines file per subject and split, one per
    WikiText article list) and the datasets cache also live in ``work_dir``.
    """
    data_dir, work_dir = Path(data_dir).resolve(), Path(work_dir).resolve()
    unknown = sorted(set(tasks) - set(DEFAULT_TASKS))
    if unknown:
        raise TaskDataError(
            f"tasks: the offline tasks are {' and '.join(DEFAULT_TASKS)}, not {unknown} "
            "(--hub runs lm-eval's own tasks)"
        )
    # Read and check everything before the task folder is touched.
    mmlu = _load_mmlu(data_dir, subjects) if TASK_MMLU in tasks else None
    wikitext = _load_wikitext(data_dir) if TASK_WIKITEXT in tasks else None
    include = work_dir / _INCLUDE_DIR
    _reset_dir(include)
    cache_dir, data_out = work_dir / "hf_datasets", work_dir / "data"
    if mmlu is not None:
        _write_mmlu(mmlu, data_out / "mmlu", include / TASK_MMLU, cache_dir)
    if wikitext is not None:
        _write_wikitext(wikitext, data_out / "wikitext", include / TASK_WIKITEXT, cache_dir)
    return include


def _reset_dir(include: Path) -> None:
    """Empty a task folder written earlier (stale subjects would join the group); refuse others."""
    if include.exists():
        if any(include.iterdir()) and not (include / _MARKER).exists():
            raise TaskDataError(f"{include} was not written by nledit; choose another work_dir")
        shutil.rmtree(include)
    include.mkdir(parents=True)
    marker = "written by nledit.lmeval.tasks.prepare_tasks\n"
    (include / _MARKER).write_text(marker, encoding="utf-8")


def _require(data_dir: Path, relative: Path) -> Path:
    path = data_dir / relative
    if not path.is_file():
        raise TaskDataError(f"missing data file {path} (expected {relative} under {data_dir})")
    return path


def _read_mmlu(path: Path) -> dict[str, _Rows]:
    by_subject: dict[str, _Rows] = {}
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                subject, choices, answer = row["subject"], row["choices"], row["answer"]
                question = row["question"]
            except (json.JSONDecodeError, KeyError, TypeError) as err:
                raise TaskDataError(f"{path}:{number}: not an MMLU row ({err})") from None
            if not (isinstance(choices, list) and len(choices) == 4 and answer in (0, 1, 2, 3)):
                raise TaskDataError(f"{path}:{number}: need 4 choices and an answer in 0-3")
            if not isinstance(subject, str) or not _SUBJECT.fullmatch(subject):
                raise TaskDataError(f"{path}:{number}: bad subject name {subject!r}")
            by_subject.setdefault(subject, []).append(
                {"question": question, "choices": choices, "answer": answer}
            )
    if not by_subject:
        raise TaskDataError(f"{path} holds no MMLU rows")
    return by_subject


def _load_mmlu(data_dir: Path, subjects: list[str] | None) -> dict[str, tuple[_Rows, _Rows]]:
    """``{subject: (test rows, dev rows)}`` for the chosen subjects, in order."""
    test_path, dev_path = _require(data_dir, MMLU_TEST), _require(data_dir, MMLU_DEV)
    test, dev = _read_mmlu(test_path), _read_mmlu(dev_path)
    chosen = sorted(test) if subjects is None else list(dict.fromkeys(subjects))
    missing = [s for s in chosen if s not in test]
    if missing or not chosen:
        raise TaskDataError(f"no MMLU subject {', '.join(missing) or '(none)'} in {test_path}")
    no_dev = [s for s in chosen if s not in dev]
    if no_dev:
        raise TaskDataError(f"{dev_path} has no few-shot rows for {', '.join(no_dev)}")
    return {subject: (test[subject], dev[subject]) for subject in chosen}


def _write_mmlu(
    mmlu: Mapping[str, tuple[_Rows, _Rows]], data_out: Path, task_dir: Path, cache_dir: Path
) -> None:
    task_dir.mkdir(parents=True)
    shutil.copyfile(_template(TASK_MMLU, "nledit_mmlu.yaml"), task_dir / "nledit_mmlu.yaml")
    template = Template(_template(TASK_MMLU, "subject.yaml").read_text(encoding="utf-8"))
    for subject, (test, dev) in mmlu.items():
        files = {}
        for split, rows in (("test", test), ("dev", dev)):
            files[split] = data_out / f"{subject}.{split}.jsonl"
            _write_if_changed(files[split], "".join(json.dumps(r) + "\n" for r in rows))
        name = subject.replace("_", " ")
        fields = {
            "task": f"{TASK_MMLU}_{subject}",
            "alias": name,
            "test_file": str(files["test"]),
            "dev_file": str(files["dev"]),
            "cache_dir": str(cache_dir),
            "description": f"{_MMLU_DESCRIPTION} {name}.\n\n",
        }
        _write_yaml(template, fields, task_dir / f"{TASK_MMLU}_{subject}.yaml")


def split_wikitext(raw: str) -> list[tuple[str, str]]:
    """Cut a WikiText raw file into ``(title, page)`` articles at the `` = Title = `` lines.

    Pages are exact slices of the file: joined, they give it back from the first title on.
    """
    articles: list[tuple[str, list[str]]] = []
    for line in raw.replace("\r\n", "\n").splitlines(keepends=True):
        match = _TITLE.fullmatch(line.rstrip("\n"))
        if match:
            articles.append((match["title"], [line]))
        elif articles:
            articles[-1][1].append(line)
    return [(title, "".join(lines)) for title, lines in articles]


def detokenize_wikitext(page: str) -> str:
    """Undo WikiText's tokenisation (spaces around punctuation, ``@-@`` and friends)."""
    for pattern, replacement in _DETOKENISE:
        page = pattern.sub(replacement, page)
    return page.strip()


def _load_wikitext(data_dir: Path) -> _Rows:
    """One document per article: the page as in the file, the text the model reads, counts."""
    raw_path = _require(data_dir, WIKITEXT_TEST)
    articles = split_wikitext(raw_path.read_text(encoding="utf-8"))
    if not articles:
        raise TaskDataError(f"{raw_path} has no article title lines like ' = Title = '")
    return [
        {
            "title": title,
            "page": page,
            "text": detokenize_wikitext(page),
            "words": len(page.split()),
            "bytes": len(page.encode("utf-8")),
        }
        for title, page in articles
    ]


def _write_wikitext(docs: _Rows, data_out: Path, task_dir: Path, cache_dir: Path) -> None:
    test_file = data_out / "test.jsonl"
    _write_if_changed(test_file, "".join(json.dumps(d, ensure_ascii=False) + "\n" for d in docs))
    task_dir.mkdir(parents=True)
    template_path = _template(TASK_WIKITEXT, "nledit_wikitext.yaml")
    template = Template(template_path.read_text(encoding="utf-8"))
    fields = {"test_file": str(test_file), "cache_dir": str(cache_dir)}
    _write_yaml(template, fields, task_dir / "nledit_wikitext.yaml")
    shutil.copyfile(_template("wikitext_results.py"), task_dir / "wikitext_results.py")


def _template(*parts: str) -> Path:
    return Path(str(resources.files("nledit.tasks").joinpath(*parts)))


def _write_yaml(template: Template, fields: Mapping[str, str], path: Path) -> None:
    """Fill a template with quoted values (a JSON string is a valid YAML double-quoted scalar)."""
    quoted = {key: json.dumps(value, ensure_ascii=False) for key, value in fields.items()}
    header = "# Written by nledit.lmeval.tasks.prepare_tasks; regenerate it, do not edit it.\n"
    path.write_text(header + template.substitute(quoted), encoding="utf-8")


def _write_if_changed(path: Path, text: str) -> None:
    """Keep the file (and its mtime, so the datasets cache stays valid) when nothing changed."""
    if path.is_file() and path.read_text(encoding="utf-8") == text:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
