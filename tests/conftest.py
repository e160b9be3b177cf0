"""Tiny random models, one per architecture family, with an offline word-level tokenizer.

Built once per session into a temporary folder and saved as ordinary safetensors checkpoints,
so every test goes through the same loading code as a real model.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
LABELS = ["World", "Sports", "Business", "Tech"]
TOPIC_WORDS = {
    0: "war election minister treaty border refugees summit embassy",
    1: "match goal coach season league striker tennis cup",
    2: "shares profit market bank earnings stocks merger investors",
    3: "software chip internet computer phone startup data robot",
}
COMMON = "the a of in on and to says after new report today week with for by"
SPECIAL = ["<pad>", "<unk>", "<s>", "</s>", "<cls>", "<sep>", "<mask>"]
PROMPT_WORDS = "Article : Topic Classify news N/A World Sports Business Tech \n"
DECODER_SPECIAL = {
    "unk_token": "<unk>",
    "pad_token": "<pad>",
    "bos_token": "<s>",
    "eos_token": "</s>",
}


def _vocab() -> list[str]:
    words = set(COMMON.split()) | set(PROMPT_WORDS.split())
    for ws in TOPIC_WORDS.values():
        words |= set(ws.split())
    return SPECIAL + sorted(words)


def make_tokenizer(kind: str = "word") -> Any:
    """The test vocabulary as a tokenizer: ``word`` (decoders), ``encoder`` (CLS/SEP) or ``bpe``."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    if kind == "bpe":
        return _bpe_tokenizer()
    vocab = {w: i for i, w in enumerate(_vocab())}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    if kind == "encoder":
        cls_id, sep_id = vocab["<cls>"], vocab["<sep>"]
        tok.post_processor = processors.TemplateProcessing(
            single="<cls> $A <sep>", special_tokens=[("<cls>", cls_id), ("<sep>", sep_id)]
        )
        return PreTrainedTokenizerFast(
            tokenizer_object=tok,
            unk_token="<unk>",
            pad_token="<pad>",
            cls_token="<cls>",
            sep_token="<sep>",
            mask_token="<mask>",
        )
    return PreTrainedTokenizerFast(tokenizer_object=tok, **DECODER_SPECIAL)


def _bpe_tokenizer() -> Any:
    """A byte-level BPE tokenizer in which every test word, with or without a leading space, is
    one token, and the special tokens keep the ids of the word-level one.

    transformers loads a ``qwen2`` folder with Qwen2Tokenizer whatever tokenizer_config.json
    names (qwen2 is in its MODELS_WITH_INCORRECT_HUB_TOKENIZER_CLASS), and that class rebuilds a
    byte-level BPE from the saved vocab and merges only, so a word-level tokenizer cannot be saved
    there. Any text still encodes: the vocabulary holds every byte.
    """
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import Qwen2Tokenizer

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    trainer = trainers.BpeTrainer(
        vocab_size=100_000,  # not reached: training merges until every word is one token
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator([f"{w} {w}" for w in _vocab() if w not in SPECIAL], trainer)
    model = json.loads(tok.to_str())["model"]
    merges = [tuple(m.split(" ") if isinstance(m, str) else m) for m in model["merges"]]
    return Qwen2Tokenizer(vocab=model["vocab"], merges=merges, **DECODER_SPECIAL)


def _configs(vocab: int) -> dict[str, tuple[str, Any]]:
    from transformers import (
        BertConfig,
        DistilBertConfig,
        Gemma3TextConfig,
        GPT2Config,
        LlamaConfig,
        MistralConfig,
        Qwen2Config,
    )

    small = {"vocab_size": vocab, "pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 3}
    return {
        "llama": (
            "LlamaForCausalLM",
            LlamaConfig(
                hidden_size=32,
                num_hidden_layers=3,
                num_attention_heads=4,
                num_key_value_heads=2,
                intermediate_size=64,
                max_position_embeddings=512,
                **small,
            ),
        ),
        "gpt2": (
            "GPT2LMHeadModel",
            GPT2Config(n_embd=32, n_layer=3, n_head=4, n_positions=512, **small),
        ),
        "gemma3": (
            "Gemma3ForCausalLM",
            Gemma3TextConfig(
                hidden_size=32,
                num_hidden_layers=3,
                num_attention_heads=2,
                num_key_value_heads=1,
                head_dim=16,
                intermediate_size=64,
                sliding_window=16,
                max_position_embeddings=512,
                **small,
            ),
        ),
        "qwen2": (
            "Qwen2ForCausalLM",
            Qwen2Config(
                hidden_size=32,
                num_hidden_layers=3,
                num_attention_heads=4,
                num_key_value_heads=2,
                intermediate_size=64,
                max_position_embeddings=512,
                **small,
            ),
        ),
        "mistral": (
            "MistralForCausalLM",
            MistralConfig(
                hidden_size=32,
                num_hidden_layers=3,
                num_attention_heads=4,
                num_key_value_heads=2,
                intermediate_size=64,
                sliding_window=16,  # shorter than the few-shot prompts, so the window is used
                max_position_embeddings=512,
                **small,
            ),
        ),
        "bert": (
            "BertForSequenceClassification",
            BertConfig(
                hidden_size=32,
                num_hidden_layers=2,
                num_attention_heads=4,
                intermediate_size=64,
                max_position_embeddings=512,
                num_labels=4,
                vocab_size=vocab,
                pad_token_id=0,
            ),
        ),
        "distilbert": (
            "DistilBertForSequenceClassification",
            DistilBertConfig(
                dim=32,
                n_layers=2,
                n_heads=4,
                hidden_dim=64,
                max_position_embeddings=512,
                num_labels=4,
                vocab_size=vocab,
                pad_token_id=0,
            ),
        ),
    }


FAMILIES = ["llama", "gpt2", "gemma3", "qwen2", "mistral", "bert", "distilbert"]
DECODERS = ["llama", "gpt2", "gemma3", "qwen2", "mistral"]
# The tokenizer kind of each family (make_tokenizer); the others use the word-level one.
TOKENIZER_KINDS = {"bert": "encoder", "distilbert": "encoder", "qwen2": "bpe"}


def build_model(family: str, folder: Path) -> Path:
    import transformers

    tokenizer = make_tokenizer(TOKENIZER_KINDS.get(family, "word"))
    arch, config = _configs(len(tokenizer))[family]
    torch.manual_seed(0)
    model = getattr(transformers, arch)(config)
    with torch.no_grad():  # larger weights give activations with some spread
        for p in model.parameters():
            p.mul_(3.0)
    model.eval().save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_data(path: Path, per_class: int = 30, seed: int = 0) -> Path:
    rng = random.Random(seed)
    common = COMMON.split()
    with path.open("w") as f:
        for c, words in TOPIC_WORDS.items():
            topic = words.split()
            for _ in range(per_class):
                n = rng.randint(4, 12)
                text = " ".join(
                    rng.choice(topic if rng.random() < 0.6 else common) for _ in range(n)
                )
                f.write(json.dumps({"text": text, "label": c}) + "\n")
    (path.parent / "labels.json").write_text(json.dumps(LABELS))
    return path


@pytest.fixture(scope="session")
def tiny_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tiny")


@pytest.fixture(scope="session")
def tiny_models(tiny_root: Path) -> dict[str, Path]:
    return {f: build_model(f, tiny_root / f) for f in FAMILIES}


@pytest.fixture(scope="session")
def tiny_data(tiny_root: Path) -> Path:
    d = tiny_root / "data"
    d.mkdir(exist_ok=True)
    return write_data(d / "topics.jsonl")


def recipe_dict(model_dir: Path, data: Path, **edit: Any) -> dict[str, Any]:
    """A small valid recipe for a tiny model."""
    return {
        "model": {"id": str(model_dir)},
        "data": {"source": str(data), "fit_per_class": 12, "eval_per_class": 6, "max_length": 32},
        "prompt": {
            "template": "Article : {text}",
            "answer_prefix": " Topic :",
            "shots": 2,
            "label_words": [" World", " Sports", " Business", " Tech"],
        },
        "edits": [{"concepts": ["Sports"], "layer": "last", "top_p": 0.25, "tau": 2.5, **edit}],
        "eval": {"perplexity_windows": 0},
        "batch_size": 4,
    }


@pytest.fixture
def make_recipe(tmp_path: Path):
    """Write a recipe YAML for a tiny model and return its path."""
    import yaml

    def make(model_dir: Path, data: Path, extra: dict | None = None, **edit: Any) -> Path:
        d = recipe_dict(model_dir, data, **edit)
        for key, value in (extra or {}).items():
            from nledit.recipe import set_dotted

            set_dotted(d, key, value)
        path = tmp_path / "recipe.yaml"
        path.write_text(yaml.safe_dump(d, sort_keys=False))
        return path

    return make


@pytest.fixture(scope="session")
def trusted_folders(
    tmp_path_factory: pytest.TempPathFactory, tiny_models: dict[str, Path], tiny_data: Path
) -> dict[str, Path]:
    """A fresh export, its fit folder and a saved edit of the tiny Llama."""
    import yaml
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import nledit
    from nledit.cli import main

    root = tmp_path_factory.mktemp("fuzz")
    recipe = root / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(recipe_dict(tiny_models["llama"], tiny_data)))
    fast = ["--set", "eval.enabled=false"]
    assert main(["fit", str(recipe), "--out", str(root / "fit"), *fast]) == 0
    assert main(["export", str(root / "fit"), "--out", str(root / "export"), *fast]) == 0
    path = str(tiny_models["llama"])
    model, tok = AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)
    names = json.loads((tiny_data.parent / "labels.json").read_text())
    rows = [json.loads(line) for line in tiny_data.read_text().splitlines()]
    pairs = [(r["text"], names[int(r["label"])]) for r in rows][::3]
    nledit.fit(model, tok, pairs, [{"concepts": ["Sports"], "layer": "last"}]).save(root / "edit")
    return {"export": root / "export", "fit": root / "fit", "edit": root / "edit", "root": root}


@pytest.fixture(autouse=True)
def _deprecated_calls_fail() -> Any:
    """nledit's own calls must not use deprecated library arguments (see ``warnguard``)."""
    import warnings

    from warnguard import install

    original = install()
    yield
    warnings.warn = original


def pytest_addoption(parser: pytest.Parser) -> None:
    """``--reference``: also run the full reference-protocol reproductions."""
    parser.addoption(
        "--reference",
        action="store_true",
        help="run the tests marked reference (a reference protocol's table on the real model, "
        "several minutes each); .ci/run runs them as their own step",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked ``reference`` are skipped, with the way to run them, unless ``--reference``."""
    if config.getoption("--reference"):
        return
    skip = pytest.mark.skip(reason="full reference-protocol run: pytest --reference -m reference")
    for item in items:
        if item.get_closest_marker("reference") is not None:
            item.add_marker(skip)
