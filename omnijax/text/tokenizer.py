"""Tokenizers of token-space runs: load one from a model directory, check it against the model.

    tok = load_tokenizer(minilm_directory())          # a Hugging Face model directory, tokenizer.json, or hub id
    tok.encode("a man plays a guitar")                # ids without special tokens
    tok.decode(ids)                                   # text; special tokens shown as written ([SEP])
    check_vocabulary(tok, model.config.vocab_size, "--model")

A `TextTokenizer` wraps a `tokenizers.Tokenizer` read from `tokenizer.json` (fast, no transformers
import); a directory without tokenizer.json (vocab.txt / merges.txt only) is read with
transformers.AutoTokenizer. The file's own padding and truncation settings (sentence-transformers
ships tokenizer.json padded to 128) are switched off: encode returns exactly the text's tokens.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterable, Sequence

__all__ = ["TextTokenizer", "TokenizerError", "check_vocabulary", "load_tokenizer"]

TOKENIZER_FILE = "tokenizer.json"
_SLOW_FILES = ("vocab.txt", "vocab.json", "merges.txt", "spiece.model", "sentencepiece.bpe.model",
               "tokenizer.model", "tokenizer_config.json")


class TokenizerError(ValueError):
    """No tokenizer could be found or read, or it does not fit the model."""


class TextTokenizer:
    """A tokenizer with the few operations token-space runs need.

    vocab_size: ids 0..vocab_size-1 (added tokens included); special_ids: ids of the special tokens
    ([CLS], [SEP], [PAD], <|endoftext|>, ...); cls_id / sep_id / bos_id / eos_id / pad_id / unk_id:
    those ids or None; source: where it was read from (a path, or the hub id)."""

    def __init__(self, backend, source: str, kind: str):
        self._backend, self.source, self._kind = backend, str(source), kind
        if kind == "tokenizers":
            backend.no_padding()
            backend.no_truncation()
            self.vocab_size = int(backend.get_vocab_size(with_added_tokens=True))
            added = backend.get_added_tokens_decoder()
            self.special_ids = frozenset(int(i) for i, t in added.items() if t.special)
            self._vocab = backend.get_vocab(with_added_tokens=True)
        else:  # transformers
            self.vocab_size = int(len(backend))
            self.special_ids = frozenset(int(i) for i in backend.all_special_ids)
            self._vocab = backend.get_vocab()
        names = {"cls_id": ("[CLS]", "<s>", "<cls>"), "sep_id": ("[SEP]", "</s>", "<sep>"),
                 "pad_id": ("[PAD]", "<pad>"), "unk_id": ("[UNK]", "<unk>"),
                 "bos_id": ("<|endoftext|>", "<s>", "<bos>", "<|begin_of_text|>"),
                 "eos_id": ("<|endoftext|>", "</s>", "<eos>", "<|end_of_text|>")}
        for attribute, candidates in names.items():
            found = [self._vocab[c] for c in candidates if c in self._vocab]
            setattr(self, attribute, int(found[0]) if found else None)

    def __repr__(self):
        return f"TextTokenizer({self.source!r}, vocab_size={self.vocab_size})"

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """The ids of `text`; without the tokenizer's special tokens unless add_special_tokens."""
        if self._kind == "tokenizers":
            return list(self._backend.encode(text, add_special_tokens=add_special_tokens).ids)
        return list(self._backend.encode(text, add_special_tokens=add_special_tokens))

    def decode(self, ids: Iterable[int], skip_special_tokens: bool = False) -> str:
        """The text of `ids`. Special tokens are written out ([SEP]) unless skip_special_tokens:
        a sampled sequence may hold them anywhere, and an annotator should see them."""
        ids = [int(i) for i in ids]
        bad = [i for i in ids if not 0 <= i < self.vocab_size]
        if bad:
            raise TokenizerError(f"token ids {bad[:5]} are outside this tokenizer's vocabulary "
                                 f"[0, {self.vocab_size}) ({self.source})")
        return self._backend.decode(ids, skip_special_tokens=skip_special_tokens)

    def token(self, token_id: int) -> str:
        """The vocabulary entry of one id (e.g. '##ing')."""
        if self._kind == "tokenizers":
            return self._backend.id_to_token(int(token_id))
        return self._backend.convert_ids_to_tokens(int(token_id))

    def tokens(self, ids: Iterable[int]) -> list[str]:
        return [self.token(i) for i in ids]


def _from_directory(directory: Path, source: str, name: str) -> TextTokenizer:
    file = directory / TOKENIZER_FILE
    if file.is_file():
        return _from_file(file, source, name)
    if any((directory / f).is_file() for f in _SLOW_FILES):
        try:
            from transformers import AutoTokenizer

            return TextTokenizer(AutoTokenizer.from_pretrained(str(directory)), str(directory), "transformers")
        except Exception as err:  # an unknown tokenizer class, a broken file
            raise TokenizerError(f"{name}={source!r}: {directory} has no {TOKENIZER_FILE} and transformers "
                                 f"could not read its tokenizer files: {type(err).__name__}: {err}") from err
    raise TokenizerError(f"{name}={source!r}: no tokenizer in {directory} (expected {TOKENIZER_FILE}, or "
                         f"vocab.txt / vocab.json + merges.txt with tokenizer_config.json)")


def _from_file(file: Path, source: str, name: str) -> TextTokenizer:
    from tokenizers import Tokenizer

    try:
        return TextTokenizer(Tokenizer.from_file(str(file)), str(file), "tokenizers")
    except Exception as err:
        raise TokenizerError(f"{name}={source!r}: {file} is not a readable tokenizer.json: "
                             f"{type(err).__name__}: {err}") from err


def load_tokenizer(path_or_hub_id: str | os.PathLike, name: str = "tokenizer",
                   hub_timeout: float = 5.0) -> TextTokenizer:
    """The tokenizer of a model: a directory holding tokenizer.json (or slow tokenizer files), a
    tokenizer.json file, or a Hugging Face hub id (its tokenizer files, from the local cache when
    the hub is unreachable or HF_HUB_OFFLINE is set). `name` (e.g. "--model") names the argument
    in every error; raises TokenizerError (a ValueError) saying what was tried."""
    if path_or_hub_id is None or str(path_or_hub_id).strip() == "":
        raise TokenizerError(f"{name} is empty: give a model directory, a tokenizer.json or a hub id")
    source = str(path_or_hub_id)
    local = Path(source).expanduser()
    if local.is_dir():
        return _from_directory(local, source, name)
    if local.is_file():
        return _from_file(local, source, name)
    tried = [f"local path {str(local)!r} (not found)"]
    try:
        import huggingface_hub

        from omnijax.models import hf_checkpoint
    except ImportError:
        raise TokenizerError(f"{name}={source!r}: no tokenizer found; tried {tried[0]}; huggingface_hub is "
                             "not installed, so the hub was not tried") from None
    offline = hf_checkpoint.hub_offline()
    proxied = any(os.environ.get(v) for v in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy"))
    if not offline and not proxied and not hf_checkpoint._hub_reachable(hub_timeout):
        offline = True
        tried.append("Hugging Face hub (https://huggingface.co unreachable)")
    try:
        snapshot = huggingface_hub.snapshot_download(
            repo_id=source, allow_patterns=[TOKENIZER_FILE, *_SLOW_FILES, "special_tokens_map.json"],
            local_files_only=offline, etag_timeout=hub_timeout)
    except Exception as err:  # not found, not cached, a malformed id
        what = "local Hugging Face cache" if offline else "Hugging Face hub"
        tried.append(f"{what}: {type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
        raise TokenizerError(f"{name}={source!r}: no tokenizer found; tried: " + "; ".join(tried)) from err
    return _from_directory(Path(snapshot), source, name)


def check_vocabulary(tokenizer: TextTokenizer, vocab_size: int, name: str = "tokenizer") -> TextTokenizer:
    """The tokenizer, if its vocabulary has exactly the model's `vocab_size` ids; else a
    TokenizerError (ValueError) naming `name`: a sampled id would decode to another token, or to
    none at all."""
    if int(tokenizer.vocab_size) != int(vocab_size):
        raise TokenizerError(f"{name}: the tokenizer ({tokenizer.source}) has {tokenizer.vocab_size} tokens but "
                             f"the model's vocabulary has {vocab_size}; they must be the same vocabulary")
    return tokenizer


def strip_frozen(ids: Sequence[int], frozen_mask) -> list[int]:
    """The ids at the free positions (frozen_mask False); all of them when frozen_mask is None."""
    if frozen_mask is None:
        return [int(i) for i in ids]
    return [int(i) for i, frozen in zip(ids, frozen_mask) if not frozen]
