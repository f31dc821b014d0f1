"""Representative token sequences of a run, as text for people: CSV, Markdown, a picture, and
texts.json (what the annotation page shows instead of token ids).

    paths = write_text_representatives(workdir, est, tokenizer, per_bin=8)

Frozen positions (the [CLS] / [SEP] around a sentence, a BOS, a fixed prompt) are STRIPPED from
the texts: they are the same in every input of the space, so the files name them once (the
Markdown header, the picture's title, texts.json's "frozen_text") and every text is the decoded
free positions only. A special token the sampler put at a FREE position is kept and written out
([SEP], [MASK], <|endoftext|>), since it is part of that input. token_ids in the CSV are the whole
sequence, frozen positions included, exactly as in samples.npz.
"""

from __future__ import annotations

import csv
import json
import os
import textwrap
import warnings

import numpy as np

from omnijax.text.tokenizer import TextTokenizer, strip_frozen

__all__ = ["TEXTS_FILE", "frozen_text", "representative_texts", "sequence_text", "write_text_representatives",
           "write_texts_json"]

TEXTS_FILE = "texts.json"


def _printable(text: str) -> str:
    """One line: newlines as ⏎, tabs as →, other control characters as \\xNN."""
    out = []
    for ch in text:
        if ch == "\n":
            out.append("\u23ce")
        elif ch == "\t":
            out.append("\u2192")
        elif ch == "\r":
            continue
        elif ord(ch) < 32 or 0x7f <= ord(ch) < 0xa0:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def _frozen_mask(est) -> np.ndarray | None:
    mask = getattr(est.space, "frozen_mask", None)
    return None if mask is None else np.asarray(mask, bool).ravel()


def sequence_text(tokenizer: TextTokenizer, ids, frozen_mask=None) -> str:
    """The decoded free positions of one sequence (frozen positions stripped, other special
    tokens written out)."""
    ids = np.asarray(ids).ravel()
    return tokenizer.decode(strip_frozen(ids, frozen_mask), skip_special_tokens=False)


def frozen_text(tokenizer: TextTokenizer, est) -> str:
    """The frozen positions of the space as one line, free positions as '…', e.g. '[CLS] … [SEP]'."""
    mask = _frozen_mask(est)
    if mask is None or not mask.any():
        return ""
    values = np.asarray(est.space.frozen_values).ravel()
    parts, free = [], False
    for frozen, v in zip(mask, values):
        if frozen:
            parts.append(tokenizer.token(int(v)))
            free = False
        elif not free:
            parts.append("\u2026")
            free = True
    return " ".join(parts)


def representative_texts(est, tokenizer: TextTokenizer, per_bin: int | None = None) -> list[dict]:
    """Per representative (bins in order, at most per_bin each, the estimate's order within a bin):
    dict bin, bin_lo, bin_hi, z, token_ids (list of the whole sequence), text."""
    mask = _frozen_mask(est)
    rows = []
    for b in range(est.num_bins):
        reps = np.asarray(est.representatives(b))
        zs = np.asarray(est.representative_outputs(b))
        count = len(reps) if per_bin is None else min(len(reps), per_bin)
        for x, z in zip(reps[:count], zs[:count]):
            ids = [int(i) for i in np.asarray(x).ravel()]
            rows.append({"bin": b, "bin_lo": float(est.bin_edges[b]), "bin_hi": float(est.bin_edges[b + 1]),
                         "z": float(z), "token_ids": ids, "text": sequence_text(tokenizer, ids, mask)})
    return rows


def write_texts_json(path: str, est, tokenizer: TextTokenizer) -> str:
    """texts.json: {"kind": "text", "tokenizer", "vocab_size", "frozen_positions", "frozen_text",
    "texts": [{"token_ids", "text"}]} for EVERY representative of the estimate (every input that
    samples.npz holds), so that the annotation page shows text. Keyed by the whole id sequence."""
    mask = _frozen_mask(est)
    rows = representative_texts(est, tokenizer)
    payload = {"kind": "text", "tokenizer": tokenizer.source, "vocab_size": int(tokenizer.vocab_size),
               "frozen_positions": [] if mask is None else [int(i) for i in np.flatnonzero(mask)],
               "frozen_text": frozen_text(tokenizer, est),
               "texts": [{"token_ids": r["token_ids"], "text": r["text"]} for r in rows]}
    with open(path, "w") as f:
        json.dump(payload, f, ensure_ascii=False, indent=1)
    return path


def _md_escape(text: str) -> str:
    text = _printable(text)
    for ch in "\\`*_[]<>|#":
        text = text.replace(ch, "\\" + ch)
    return text


def _write_markdown(path: str, est, rows: list[dict], title: str, frozen: str, per_bin: int) -> None:
    lines = [f"# Representatives{': ' + title if title else ''}", ""]
    if frozen:
        lines += [f"Every input is `{frozen}`; the texts below are the free positions (frozen ones stripped; "
                  "a special token at a free position is written out).", ""]
    lines += [f"At most {per_bin} per bin; z is the model's output.", ""]
    by_bin: dict[int, list[dict]] = {}
    for r in rows:
        by_bin.setdefault(r["bin"], []).append(r)
    for b in range(est.num_bins):
        lo, hi = float(est.bin_edges[b]), float(est.bin_edges[b + 1])
        shown = by_bin.get(b, [])
        total = len(est.representatives(b))
        lines.append(f"## bin {b}: z in [{lo:.4g}, {hi:.4g}) ({total} representative{'s' * (total != 1)})")
        lines.append("")
        if not shown:
            lines += ["(none sampled)", ""]
            continue
        for r in shown:
            lines.append(f"- z={r['z']:.4g}: {_md_escape(r['text']) or '(empty)'}")
        lines.append("")
    with open(path, "w") as f:
        f.write("\n".join(lines))


def _cell(text: str, max_chars: int, width: int, lines: int) -> str:
    text = _printable(text) or "(empty)"
    if len(text) > max_chars:
        text = text[: max_chars - 1].rstrip() + "\u2026"
    wrapped = textwrap.wrap(text, width=width, break_long_words=True, break_on_hyphens=False) or [""]
    if len(wrapped) > lines:
        wrapped = wrapped[:lines]
        wrapped[-1] = wrapped[-1][: width - 1] + "\u2026"
    return "\n".join(wrapped)


def _write_picture(path: str, est, rows: list[dict], title: str, frozen: str, per_bin: int, max_rows: int,
                   max_chars: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_bin: dict[int, list[dict]] = {}
    for r in rows:
        by_bin.setdefault(r["bin"], []).append(r)
    filled = sorted(by_bin)
    shown = filled[:: max(1, -(-len(filled) // max_rows))] if filled else []
    columns = max(1, min(per_bin, max((len(by_bin[b]) for b in shown), default=1)))
    width_chars, lines = 34, 3
    cell_w, row_h, label_w = 2.3, 0.52, 1.0
    fig_w = label_w + columns * cell_w
    fig_h = 0.8 + max(1, len(shown)) * row_h
    fig = plt.figure(figsize=(fig_w, fig_h), dpi=110)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(0, fig_w)
    ax.set_ylim(fig_h, 0)
    ax.axis("off")
    heading = title or "representatives"
    if frozen:
        heading += f"   (every input: {frozen}; frozen tokens stripped)"
    ax.text(0.1, 0.3, heading, fontsize=9, va="center", ha="left", parse_math=False, weight="bold")
    if not shown:
        ax.text(0.1, 0.8, "(no bin holds a representative)", fontsize=8, va="center", parse_math=False)
    for row, b in enumerate(shown):
        y = 0.7 + row * row_h
        lo, hi = float(est.bin_edges[b]), float(est.bin_edges[b + 1])
        ax.text(0.08, y + row_h / 2, f"z\u2248{(lo + hi) / 2:.3g}\n[{lo:.3g}, {hi:.3g})", fontsize=7,
                va="center", ha="left", parse_math=False, family="monospace")
        if row % 2 == 0:
            ax.add_patch(plt.Rectangle((0, y), fig_w, row_h, color="#f1f1f7", zorder=0, lw=0))
        for col, r in enumerate(by_bin[b][:columns]):
            ax.text(label_w + col * cell_w + 0.05, y + row_h / 2, _cell(r["text"], max_chars, width_chars, lines),
                    fontsize=6.5, va="center", ha="left", parse_math=False, linespacing=1.15)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # glyphs the default font lacks (CJK, emoji) are drawn as boxes
        fig.savefig(path)
    plt.close(fig)


def write_text_representatives(workdir: str, est, tokenizer: TextTokenizer, per_bin: int = 8, *, title: str = "",
                               max_rows: int = 40, max_chars: int = 100) -> dict[str, str]:
    """Writes, in `workdir`, the representative sequences of `est` as text:

    representatives.csv  bin,bin_lo,bin_hi,z,token_ids,text (at most per_bin per bin; token_ids the
                         whole sequence space-separated, text the decoded free positions)
    representatives.md   per bin its texts with z
    representatives.png  per bin (up to max_rows bins, evenly thinned) a row of its texts, each cut
                         at max_chars characters and wrapped onto 3 lines
    texts.json           every representative's text, for the annotation page (`write_texts_json`)

    Returns {file name: path}. est: an estimate (num_bins, bin_edges, space, representatives(b),
    representative_outputs(b)) over token ids of `tokenizer`'s vocabulary."""
    if not isinstance(per_bin, int) or per_bin < 1:
        raise ValueError(f"per_bin must be a positive int, got {per_bin!r}")
    os.makedirs(workdir, exist_ok=True)
    paths = {name: os.path.join(workdir, name) for name in
             ("representatives.csv", "representatives.md", "representatives.png", TEXTS_FILE)}
    rows = representative_texts(est, tokenizer, per_bin)
    with open(paths["representatives.csv"], "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["bin", "bin_lo", "bin_hi", "z", "token_ids", "text"])
        for r in rows:
            writer.writerow([r["bin"], f"{r['bin_lo']:.6g}", f"{r['bin_hi']:.6g}", f"{r['z']:.6g}",
                             " ".join(str(i) for i in r["token_ids"]), r["text"]])
    frozen = frozen_text(tokenizer, est)
    _write_markdown(paths["representatives.md"], est, rows, title, frozen, per_bin)
    _write_picture(paths["representatives.png"], est, rows, title, frozen, per_bin, max_rows, max_chars)
    write_texts_json(paths[TEXTS_FILE], est, tokenizer)
    return paths
