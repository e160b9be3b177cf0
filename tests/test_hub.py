"""`nledit.checkpoint.hub.push` against an in-process fake Hub (no network).

huggingface_hub 2.x sends every request through one shared ``httpx2.Client`` built by a factory
that tests may replace (``set_client_factory``); the fake answers create-repo, branch, README
validation, preupload and commit, and records every request.
"""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx2
import huggingface_hub
import pytest
from huggingface_hub import set_client_factory
from huggingface_hub.utils._http import default_client_factory

from nledit.checkpoint.card import CardInfo, write_card
from nledit.checkpoint.hub import REQUIRED_FILES, NleditHubError, push
from nledit.checkpoint.integrity import MANIFEST_FILE

TOKEN = "hf_nleditTestSecretToken0123456789"
OID = "0123456789abcdef0123456789abcdef01234567"
# huggingface_hub 2.x fetches this registry (unauthenticated, from the default endpoint) once per
# process while building its user agent; it is not part of the push.
REGISTRY = "/api/agent-harnesses"


class FakeHub:
    """Answers the Hub endpoints a push calls; ``fail[(method, path suffix)] = status``."""

    def __init__(self) -> None:
        self.all: list[httpx2.Request] = []  # every request, including the registry below
        self.requests: list[httpx2.Request] = []  # requests made for the push
        self.commits: list[tuple[str, list[dict]]] = []  # (url path, ndjson items)
        self.branches: set[str] = set()
        self.fail: dict[tuple[str, str], int] = {}
        self.raise_exc: Exception | None = None

    def handler(self, request: httpx2.Request) -> httpx2.Response:
        self.all.append(request)
        if request.url.path == REGISTRY:  # huggingface_hub's own once-per-process lookup
            return httpx2.Response(404)
        self.requests.append(request)
        if self.raise_exc is not None:
            raise self.raise_exc
        path = request.url.path
        for (method, suffix), status in self.fail.items():
            if request.method == method and path.endswith(suffix):
                return httpx2.Response(status, json={"error": f"refused with {status}"})
        if request.method != "POST":
            return httpx2.Response(404, json={"error": "not found"})
        body = request.content
        if path == "/api/repos/create":
            payload = json.loads(body)
            repo = f"{payload['organization']}/{payload['name']}"
            # the real Hub answers with its public URL whatever endpoint was called
            return httpx2.Response(200, json={"url": f"https://huggingface.co/{repo}"})
        if path == "/api/validate-yaml":
            return httpx2.Response(200, json={"errors": [], "warnings": []})
        if "/branch/" in path:
            branch = path.rsplit("/", 1)[1]
            if branch in self.branches:
                return httpx2.Response(409, json={"error": "branch already exists"})
            self.branches.add(branch)
            return httpx2.Response(200, json={})
        if "/preupload/" in path:
            files = json.loads(body)["files"]
            answer = [
                {"path": f["path"], "uploadMode": "regular", "shouldIgnore": False} for f in files
            ]
            return httpx2.Response(200, json={"files": answer})
        if "/commit/" in path:
            items = [json.loads(line) for line in body.decode().splitlines() if line]
            self.commits.append((path, items))
            repo = path.split("/api/models/")[1].split("/commit/")[0]
            url = f"https://huggingface.co/{repo}/commit/{OID}"
            commit = {"commitUrl": url, "commitOid": OID, "pullRequestUrl": None}
            return httpx2.Response(200, json=commit)
        return httpx2.Response(404, json={"error": "not found"})

    def uploaded(self, index: int = -1) -> dict[str, bytes]:
        """Files of a commit, decoded from the ndjson payload."""
        _, items = self.commits[index]
        assert items[0]["key"] == "header"
        out = {}
        for item in items[1:]:
            assert item["key"] == "file", item  # small files: regular, base64 inline
            assert item["value"]["encoding"] == "base64"
            out[item["value"]["path"]] = base64.b64decode(item["value"]["content"])
        return out


@pytest.fixture
def no_token(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for var in ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HF_OIDC_RESOURCE", "HF_HUB_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(huggingface_hub.constants, "HF_TOKEN_PATH", str(tmp_path / "no-token"))


@pytest.fixture
def hub(monkeypatch: pytest.MonkeyPatch, no_token: None) -> Iterator[FakeHub]:
    fake = FakeHub()
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    set_client_factory(lambda: httpx2.Client(transport=httpx2.MockTransport(fake.handler)))
    yield fake
    set_client_factory(default_client_factory)


def write_manifest(out: Path) -> None:
    """The manifest an export carries: every file's sha256 and the edits it describes."""
    files = {
        p.relative_to(out).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(out.rglob("*"))
        if p.is_file() and p.name != MANIFEST_FILE
    }
    manifest = {
        "method": "range",
        "edits": [{"name": "sports", "layer": 1, "operator": {"name": "zero"}}],
        "files": files,
    }
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))


@pytest.fixture
def export(trusted_folders: dict[str, Path], tmp_path: Path) -> Path:
    """A real export of a tiny Llama, its card naming a Hub base model (and its hash updated)."""
    out = tmp_path / "out"
    shutil.copytree(trusted_folders["export"], out)
    write_card(out, CardInfo(base_model="HuggingFaceTB/SmolLM2-135M", repo_id="me/smol-edit"))
    manifest = json.loads((out / MANIFEST_FILE).read_text())
    manifest["files"]["README.md"] = hashlib.sha256((out / "README.md").read_bytes()).hexdigest()
    (out / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
    return out


def expected_files(out: Path) -> dict[str, bytes]:
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in out.rglob("*") if p.is_file()}


def test_push_uploads_every_file_in_one_commit(hub: FakeHub, export: Path) -> None:
    result = push(export, "me/smol-edit")

    assert len(hub.commits) == 1
    path, items = hub.commits[0]
    assert path == "/api/models/me/smol-edit/commit/main"
    assert items[0]["value"]["summary"]
    assert hub.uploaded() == expected_files(export)  # byte for byte
    assert hub.uploaded()["README.md"].startswith(b"---\n")
    assert "base_model: HuggingFaceTB/SmolLM2-135M" in hub.uploaded()["README.md"].decode()

    create = json.loads(hub.requests[0].content)
    assert hub.requests[0].url.path == "/api/repos/create"
    assert (create["organization"], create["name"], create["visibility"]) == (
        "me",
        "smol-edit",
        "public",
    )
    assert all(r.url.host == "huggingface.co" for r in hub.requests)

    assert result.commit_oid == OID
    assert result.commit_url.endswith(f"/me/smol-edit/commit/{OID}")
    files = {f.path: f for f in result.files}
    assert set(files) == set(expected_files(export))
    for rel, data in expected_files(export).items():
        assert files[rel].size == len(data)
        assert files[rel].sha256 == hashlib.sha256(data).hexdigest()


def test_token_only_in_authorization_header(
    hub: FakeHub, export: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("DEBUG")
    result = push(export, "me/smol-edit", commit_message="first")

    assert hub.requests
    for r in hub.all:
        expected = None if r.url.path == REGISTRY else f"Bearer {TOKEN}"
        assert r.headers.get("authorization") == expected
        others = [v for k, v in r.headers.items() if k.lower() != "authorization"]
        assert not any(TOKEN in v for v in others)
        assert TOKEN not in str(r.url)
        assert TOKEN.encode() not in r.content
    for p in tmp_path.rglob("*"):
        if p.is_file():
            assert TOKEN.encode() not in p.read_bytes(), p
    assert TOKEN not in repr(result) and TOKEN not in result.summary()
    assert TOKEN not in caplog.text
    assert hub.commits[0][1][0]["value"]["summary"] == "first"


def test_private_repo_on_a_new_and_an_existing_branch(hub: FakeHub, export: Path) -> None:
    push(export, "me/smol-edit", private=True, revision="v1")
    assert json.loads(hub.requests[0].content)["visibility"] == "private"
    assert "/api/models/me/smol-edit/branch/v1" in [r.url.path for r in hub.requests]
    assert hub.commits[0][0] == "/api/models/me/smol-edit/commit/v1"

    result = push(export, "me/smol-edit", revision="v1")  # branch exists now: 409 is fine
    assert len(hub.commits) == 2 and hub.commits[1][0].endswith("/commit/v1")
    assert result.revision == "v1"


def test_custom_endpoint(hub: FakeHub, export: Path) -> None:
    push(export, "me/smol-edit", endpoint="https://hub.test")
    assert {r.url.host for r in hub.requests} == {"hub.test"}


def test_dry_run_makes_no_request(
    hub: FakeHub, export: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HF_TOKEN")  # a dry run needs no login either
    result = push(export, "me/smol-edit", dry_run=True, revision="v2")
    assert hub.all == []
    assert result.dry_run and result.commit_oid is None
    sizes = {f.path: f.size for f in result.files}
    assert sizes == {k: len(v) for k, v in expected_files(export).items()}
    assert "would upload" in result.summary() and "README.md" in result.summary()


@pytest.mark.parametrize("name", REQUIRED_FILES)
def test_missing_export_file_is_named(hub: FakeHub, export: Path, name: str) -> None:
    (export / name).unlink()
    with pytest.raises(NleditHubError, match=name.replace(".", r"\.")):
        push(export, "me/smol-edit", dry_run=True)
    assert hub.all == []


def test_config_without_nledit_block(hub: FakeHub, export: Path) -> None:
    (export / "config.json").write_text('{"model_type": "llama"}')
    write_manifest(export)  # even with its hash recorded
    with pytest.raises(NleditHubError, match="nledit"):
        push(export, "me/smol-edit")
    assert hub.all == []


def test_nothing_outside_the_export_leaves(hub: FakeHub, export: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("not for the Hub")
    (export / "link.txt").symlink_to(secret)
    with pytest.raises(NleditHubError, match=r"symlinks.*link\.txt"):
        push(export, "me/smol-edit", dry_run=True)
    (export / "link.txt").unlink()
    (export / "notes").mkdir()
    (export / "notes" / "mine.txt").write_text("private")
    with pytest.raises(NleditHubError, match=r"unlisted files: notes/mine\.txt"):
        push(export, "me/smol-edit", dry_run=True)
    (export / "notes" / "mine.txt").unlink()
    (export / "notes").rmdir()
    (export / "nledit_manifest.json").unlink()
    with pytest.raises(NleditHubError, match=r"no nledit_manifest\.json"):
        push(export, "me/smol-edit", dry_run=True)
    assert hub.all == []


def test_tampered_code_is_not_pushed_even_when_rehashed(hub: FakeHub, export: Path) -> None:
    with (export / "modeling_nledit.py").open("a") as f:
        f.write("\nimport os  # added later\n")
    write_manifest(export)
    with pytest.raises(NleditHubError, match="differs from every nledit run-time"):
        push(export, "me/smol-edit")
    assert hub.all == []


def test_no_token(no_token: None, export: Path) -> None:
    fake = FakeHub()
    set_client_factory(lambda: httpx2.Client(transport=httpx2.MockTransport(fake.handler)))
    try:
        with pytest.raises(NleditHubError, match="HF_TOKEN"):
            push(export, "me/smol-edit")
    finally:
        set_client_factory(default_client_factory)
    assert fake.all == []


@pytest.mark.parametrize("repo_id", ["me/smol/edit", "me/smol edit", "me/--bad--", ""])
def test_invalid_repo_id(hub: FakeHub, export: Path, repo_id: str) -> None:
    with pytest.raises(NleditHubError, match="invalid repository id"):
        push(export, repo_id)
    assert hub.all == []


@pytest.mark.parametrize(
    ("route", "status", "hint"),
    [
        (("POST", "/api/repos/create"), 403, "write access"),
        (("POST", "/api/repos/create"), 401, "token was rejected"),
        (("POST", "/commit/main"), 404, "does not exist"),
        (("POST", "/preupload/main"), 422, "request failed"),
    ],
)
def test_http_errors_become_clear_messages(
    hub: FakeHub, export: Path, route: tuple[str, str], status: int, hint: str
) -> None:
    hub.fail[route] = status
    with pytest.raises(NleditHubError) as info:
        push(export, "me/smol-edit")
    msg = str(info.value)
    assert f"HTTP {status}" in msg and hint in msg and "me/smol-edit" in msg
    assert TOKEN not in msg
    assert info.value.__cause__ is None and info.value.__suppress_context__
    assert hub.commits == []


def test_unreachable_hub(hub: FakeHub, export: Path) -> None:
    hub.raise_exc = httpx2.ConnectError("name resolution failed")
    with pytest.raises(NleditHubError, match="cannot reach the Hub"):
        push(export, "me/smol-edit")
