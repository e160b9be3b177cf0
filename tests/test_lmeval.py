"""Offline lm-eval tasks (``nledit_mmlu``, ``nledit_wikitext``) on a tiny random Llama.

The data directory is written here in the shared layout (``mmlu/{test,dev}.jsonl``,
``wikitext2/wiki.test.raw``), small enough that both tasks run through lm-eval in seconds.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

pytest.importorskip("lm_eval")

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from nledit.lmeval.harness import HarnessOptions, compare, lm_eval_command, run_lm_eval
from nledit.lmeval.tasks import (
    TaskDataError,
    detokenize_wikitext,
    prepare_tasks,
    resolve_task_names,
    split_wikitext,
)

SUBJECTS = ("anatomy", "virology", "world_religions")
WORDS = (
    *("the", "cell", "bone", "virus", "host", "god", "temple", "faith", "nerve", "muscle"),
    *("heart", "blood", "immune", "protein", "gene", "prayer", "ritual", "scripture", "river"),
    *("city", "king", "war", "music", "film", "song", "actor", "season", "team", "game"),
)
PARAGRAPH = (
    " {name} is a test article , with a guest @-@ starring role in 2 @,@ 000 films and "
    '3 @.@ 5 short ones ( mostly songs ) . Critics called {name} \'s " best " work a '
    "surprise ; fans ' letters said so too . \n"
)


def _article(title: str, sections: int) -> str:
    body = [f" = {title} = \n", " \n"]
    for n in range(sections):
        body += [f" = = Part {n} = = \n", " \n", PARAGRAPH.format(name=title) * 3, " \n"]
    return "".join(body)


@pytest.fixture(autouse=True)
def _offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("data")
    (root / "mmlu").mkdir()
    (root / "wikitext2").mkdir()
    for split, rows in (("test", 6), ("dev", 5)):
        with (root / "mmlu" / f"{split}.jsonl").open("w", encoding="utf-8") as out:
            for s, subject in enumerate(SUBJECTS):
                for i in range(rows):
                    words = [WORDS[(7 * i + 3 * s + k) % len(WORDS)] for k in range(9)]
                    row = {
                        "subject": subject,
                        "question": " ".join(words).capitalize() + "?",
                        "choices": [WORDS[(i + s + k) % len(WORDS)] for k in range(4)],
                        "answer": (i + s) % 4,
                    }
                    out.write(json.dumps(row) + "\n")
    raw = " \n" + _article("Alpha Beta", 3) + _article("Gamma", 2) + _article("Delta Song", 1)
    (root / "wikitext2" / "wiki.test.raw").write_text(raw, encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def tiny_llama(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """A random 2-layer Llama with a byte-level BPE tokenizer trained on the test data."""
    texts = [line for path in data_dir.rglob("*.*") for line in path.read_text().splitlines()]
    tokenizer = Tokenizer(models.BPE(unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=["<unk>", "<s>", "</s>", "<pad>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tokenizer.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        unk_token="<unk>",
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
    )
    config = LlamaConfig(
        vocab_size=len(fast),
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        num_key_value_heads=1,
        intermediate_size=64,
        max_position_embeddings=256,
        bos_token_id=fast.bos_token_id,
        eos_token_id=fast.eos_token_id,
        pad_token_id=fast.pad_token_id,
    )
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny_llama")
    LlamaForCausalLM(config).save_pretrained(path)
    fast.save_pretrained(path)
    return path


def test_prepare_tasks_writes_an_include_path(data_dir: Path, tmp_path: Path) -> None:
    from lm_eval.tasks import TaskManager

    include = prepare_tasks(data_dir, tmp_path)
    manager = TaskManager(include_path=str(include), include_defaults=False)
    assert set(manager.all_groups) == {"nledit_mmlu"}
    assert set(manager.all_subtasks) == {f"nledit_mmlu_{s}" for s in SUBJECTS} | {"nledit_wikitext"}

    # A second run with fewer subjects must not leave the others in the group.
    include = prepare_tasks(data_dir, tmp_path, subjects=["virology"], tasks=["nledit_mmlu"])
    manager = TaskManager(include_path=str(include), include_defaults=False)
    assert set(manager.all_subtasks) == {"nledit_mmlu_virology"}

    subject_yaml = (include / "nledit_mmlu" / "nledit_mmlu_virology.yaml").read_text()
    assert str(tmp_path / "data" / "mmlu" / "virology.test.jsonl") in subject_yaml
    assert "${" not in subject_yaml


def test_prepare_tasks_names_the_missing_file(data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(TaskDataError, match=r"mmlu/test\.jsonl"):
        prepare_tasks(tmp_path / "nowhere", tmp_path / "work")
    assert not (tmp_path / "work").exists()

    only_mmlu = tmp_path / "only_mmlu"
    (only_mmlu / "mmlu").mkdir(parents=True)
    for name in ("test.jsonl", "dev.jsonl"):
        (only_mmlu / "mmlu" / name).write_bytes((data_dir / "mmlu" / name).read_bytes())
    with pytest.raises(TaskDataError, match=r"wikitext2/wiki\.test\.raw"):
        prepare_tasks(only_mmlu, tmp_path / "work")
    assert prepare_tasks(only_mmlu, tmp_path / "work", tasks=["nledit_mmlu"]).is_dir()

    with pytest.raises(TaskDataError, match="no MMLU subject astrology"):
        prepare_tasks(data_dir, tmp_path / "work", subjects=["anatomy", "astrology"])
    # Checked before writing: the folder from the last good run is still there.
    assert (tmp_path / "work" / "lm_eval_tasks" / "nledit_mmlu" / "nledit_mmlu.yaml").is_file()


def test_split_and_detokenize_wikitext(data_dir: Path) -> None:
    raw = (data_dir / "wikitext2" / "wiki.test.raw").read_text()
    articles = split_wikitext(raw)
    assert [title for title, _ in articles] == ["Alpha Beta", "Gamma", "Delta Song"]
    assert " \n" + "".join(page for _, page in articles) == raw

    text = detokenize_wikitext(articles[1][1])
    assert text.startswith("= Gamma =\n\n== Part 0 ==\n")
    assert "a guest-starring role in 2,000 films and 3.5 short ones (mostly songs)." in text
    assert "Critics called Gamma's \"best\" work a surprise; fans' letters said so too." in text


def test_run_lm_eval_on_tiny_llama(data_dir: Path, tiny_llama: Path, tmp_path: Path) -> None:
    include = prepare_tasks(data_dir, tmp_path, subjects=["anatomy", "world_religions"])
    options = HarnessOptions(
        include_path=include,
        limit=4,
        num_fewshot=None,
        batch_size=1,
        device="cpu",
        dtype="float32",
        extra_model_args={"max_length": 128},  # several rolling windows per article
    )
    result = run_lm_eval(str(tiny_llama), ["nledit_mmlu", "nledit_wikitext"], options)
    mmlu = result["nledit_mmlu"]
    assert 0.0 <= mmlu["acc"] <= 1.0
    for subject in ("anatomy", "world_religions"):
        assert 0.0 <= result[f"nledit_mmlu_{subject}"]["acc"] <= 1.0
    assert "nledit_mmlu_virology" not in result

    wiki = result["nledit_wikitext"]
    assert set(wiki) == {"word_perplexity", "byte_perplexity", "bits_per_byte"}
    assert all(math.isfinite(v) and v > 0 for v in wiki.values())
    assert math.isclose(wiki["byte_perplexity"], 2 ** wiki["bits_per_byte"], rel_tol=1e-9)

    meta = result["_meta"]
    assert meta["n_samples"]["nledit_mmlu_anatomy"] == 4
    assert meta["n_samples"]["nledit_mmlu"] == 8
    assert meta["n_samples"]["nledit_wikitext"] == 3  # every article: limit 4 > 3
    assert meta["model_args"]["trust_remote_code"] is True
    assert meta["model_args"]["max_length"] == 128
    assert not any(k.endswith(",none") for row in result.values() for k in row)


def test_compare_a_model_with_itself(data_dir: Path, tiny_llama: Path, tmp_path: Path) -> None:
    include = prepare_tasks(data_dir, tmp_path, subjects=["virology"], tasks=["nledit_mmlu"])
    options = HarnessOptions(include_path=include, limit=2, num_fewshot=1)
    out = compare(tiny_llama, tiny_llama, ["nledit_mmlu"], options)
    assert out["base"]["_meta"]["num_fewshot"] == 1
    assert out["base"]["nledit_mmlu"]["acc"] == out["edited"]["nledit_mmlu"]["acc"]
    assert out["delta"]["nledit_mmlu"] == {"acc": 0.0}


def test_lm_eval_command_and_task_names(tmp_path: Path) -> None:
    command = lm_eval_command("out dir", include_path=tmp_path / "tasks", limit=5)
    assert command == (
        "lm_eval --model hf --model_args 'pretrained=out dir,trust_remote_code=True' "
        f"--tasks nledit_mmlu,nledit_wikitext --include_path {tmp_path / 'tasks'} --limit 5"
    )
    command = lm_eval_command(
        "out",
        ["nledit_mmlu"],
        "t",
        dtype="float32",
        num_fewshot=5,
        extra_model_args={"max_length": 2048},
    )
    assert command == (
        "lm_eval --model hf --model_args "
        "pretrained=out,trust_remote_code=True,dtype=float32,max_length=2048 "
        "--tasks nledit_mmlu --include_path t --num_fewshot 5"
    )
    with pytest.raises(ValueError, match="comma"):
        lm_eval_command("a,b")
    assert resolve_task_names(["mmlu", " wikitext", "hellaswag", ""]) == [
        "nledit_mmlu",
        "nledit_wikitext",
        "hellaswag",
    ]
