"""The SST-2 experiment's steps (paper §3.2 "Language classifier", Appendix D), so that
experiments/sst2.py stays flags only: a DistilBERT sentiment classifier, loaded or fine-tuned on GLUE
SST-2, and its positive-class logit over ALL sentences of L tokens between a frozen [CLS] and [SEP],
as a token target (the embedding path; the weights are arguments of the compiled calls).
"""

from __future__ import annotations

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from omnijax.data.mnist import hub_unreachable_reason
from omnijax.models import distilbert as db
from omnijax.models import hf_checkpoint
from omnijax.sampling.token_target import token_target

DEFAULT_MODEL = "distilbert-base-uncased-finetuned-sst-2-english"
FINETUNE_BASE = "distilbert-base-uncased"
POSITIVE_NAMES = ("positive", "pos", "label_1")


class ClassifierError(ValueError):
    """Bad input for the SST-2 experiment, phrased naming the flag."""


def load_classifier(source: str, *, bf16: bool = False) -> tuple[db.DistilBertClassifier, str]:
    """(model, directory); ClassifierError naming --model for a checkpoint that cannot be had, of
    another architecture, or with missing weights (the loader's message says what was tried)."""
    try:
        directory = hf_checkpoint.resolve_directory(source, db.CHECKPOINT)
        model = db.load_distilbert(directory, dtype=jnp.bfloat16 if bf16 else jnp.float32)
    except db.DistilBertLoadError as err:
        raise ClassifierError(f"--model={source}: {err}") from err
    return model, str(directory)


def positive_label(model: db.DistilBertClassifier, flag: str | None) -> int:
    """The class whose logit is z: --positive_label (an index or a label name), else the label named
    POSITIVE in config.json's id2label, else 1 of two labels."""
    names = model.config.label_names
    n = model.config.num_labels
    if flag is not None:
        if flag.lstrip("-").isdigit():
            index = int(flag)
        elif names and flag.lower() in [x.lower() for x in names]:
            index = [x.lower() for x in names].index(flag.lower())
        else:
            raise ClassifierError(f"--positive_label={flag!r} is neither a class index nor one of the labels "
                                  f"{list(names) if names else list(range(n))}")
        if not 0 <= index < n:
            raise ClassifierError(f"--positive_label={flag} is outside the model's {n} classes")
        return index
    if names:
        for i, name in enumerate(names):
            if name.lower() in POSITIVE_NAMES[:2]:
                return i
    if n == 2:
        return 1
    raise ClassifierError(f"the model has {n} classes {list(names) if names else ''} and none is named POSITIVE: "
                          "give --positive_label")


def frozen_ids(tokenizer, vocab: int, cls_id: int | None, sep_id: int | None) -> tuple[int, int]:
    """[CLS] and [SEP]: the flags, else the tokenizer's; ClassifierError naming the flag."""
    cls_id = tokenizer.cls_id if cls_id is None else cls_id
    sep_id = tokenizer.sep_id if sep_id is None else sep_id
    for flag, value in (("--cls_id", cls_id), ("--sep_id", sep_id)):
        if value is None:
            raise ClassifierError(f"{flag} is required: the tokenizer ({tokenizer.source}) has no "
                                  f"{'[CLS]' if flag == '--cls_id' else '[SEP]'} token")
        if not 0 <= value < vocab:
            raise ClassifierError(f"{flag}={value} is outside the model's vocabulary [0, {vocab})")
    return int(cls_id), int(sep_id)


def check_length(model: db.DistilBertClassifier, length: int) -> None:
    positions = model.config.max_position_embeddings
    if not 1 <= length <= positions - 2:
        raise ClassifierError(f"--length={length} must lie in [1, {positions - 2}]: with [CLS] and [SEP] the "
                              f"model reads length + 2 tokens and has max_position_embeddings={positions}")


def sentence_space(length: int, vocab: int, cls_id: int, sep_id: int):
    """{0..V-1}^(L+2) with position 0 frozen to [CLS] and the last to [SEP]."""
    import omnijax as oj

    mask = np.zeros(length + 2, bool)
    mask[[0, -1]] = True
    values = np.zeros(length + 2, np.int64)
    values[0], values[-1] = cls_id, sep_id
    return oj.InputSpace(shape=(length + 2,), num_categories=vocab, frozen_mask=mask, frozen_values=values)


def logit_target(model: db.DistilBertClassifier, label: int):
    """z = the logit of class `label`, as a token target on the word embeddings (no tied head: the
    embeddings enter only as inputs, so u = dz/de is the whole story)."""
    graphdef, state = nnx.split(model)
    return token_target(_Logit(graphdef, int(label)), model.embedding_matrix(), state)


class _Logit:
    def __init__(self, graphdef, label: int):
        self.graphdef, self.label = graphdef, label
        self.__name__ = "distilbert_logit"

    def __call__(self, state, embedding, e):
        del embedding
        return nnx.merge(self.graphdef, state).apply_embeddings(e)[self.label]

    def __eq__(self, other):
        return isinstance(other, _Logit) and (other.graphdef, other.label) == (self.graphdef, self.label)

    def __hash__(self):
        return hash((self.graphdef, self.label))


# ----------------------------------------------------------------------------- fine-tuning


def load_glue_sst2():
    """(train, validation) lists of (sentence, label) from GLUE SST-2 through `datasets`;
    ClassifierError naming --finetune and what was tried when it cannot be had."""
    tried = []
    unreachable = hub_unreachable_reason()  # datasets retries ~25 s per id when the hub cannot be reached
    if unreachable is not None:
        raise ClassifierError(f"--finetune needs GLUE SST-2; tried: the hub ({unreachable})")
    try:
        import datasets
    except ImportError as err:
        tried.append(f"import datasets ({type(err).__name__}: {err}; pip install datasets)")
        raise ClassifierError("--finetune needs GLUE SST-2; tried: " + "; ".join(tried)) from None
    for name, config in (("nyu-mll/glue", "sst2"), ("glue", "sst2"), ("stanfordnlp/sst2", None)):
        try:
            data = datasets.load_dataset(name, config) if config else datasets.load_dataset(name)
            pick = lambda split: [(row["sentence"], int(row["label"])) for row in data[split]]  # noqa: E731
            return pick("train"), pick("validation")
        except Exception as err:  # unreachable hub, not cached, renamed
            tried.append(f"datasets.load_dataset({name!r}{', ' + repr(config) if config else ''}): "
                         f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}")
    raise ClassifierError("--finetune needs GLUE SST-2; tried: " + "; ".join(tried))


def load_base_for_finetune(source: str, *, seed: int = 0) -> db.DistilBertClassifier:
    """A DistilBertClassifier (2 labels NEGATIVE/POSITIVE) with the encoder of a DistilBERT checkpoint
    (DistilBertModel, DistilBertForMaskedLM, or a classifier, whose head is then kept); the head of a
    checkpoint without one is initialised at random. ClassifierError naming --finetune_from."""
    kind = db.DistilBertLoadError
    any_distilbert = hf_checkpoint.CheckpointKind(name="DistilBERT", error=kind, model_type="distilbert",
                                                  prefixes=("distilbert.",))
    try:
        directory = hf_checkpoint.resolve_directory(source, any_distilbert)
        raw = hf_checkpoint.read_config(directory, any_distilbert)
        config = db.DistilBertConfig.from_hf_config(
            {**{k: v for k, v in raw.items() if k not in ("architectures", "id2label", "label2id")},
             "id2label": {"0": "NEGATIVE", "1": "POSITIVE"}})
        tensors = hf_checkpoint.read_tensors(directory, any_distilbert)
        model = db.DistilBertClassifier(config, rngs=nnx.Rngs(seed))
        layout = db._layout(config)
        head = ("pre_classifier.", "classifier.")
        if not all(k in tensors for k in layout if k.startswith(head)):
            layout = {k: v for k, v in layout.items() if not k.startswith(head)}
        return hf_checkpoint.load_parameters(
            model, tensors, layout, any_distilbert, directory / hf_checkpoint.WEIGHTS_FILE, model.dtype,
            lambda key: key == "embeddings.position_ids" or key.startswith(("vocab_", "classifier.",
                                                                             "pre_classifier.")))
    except kind as err:
        raise ClassifierError(f"--finetune_from={source}: {err}") from err


def encode_sentences(tokenizer, sentences, length: int, cls_id: int, sep_id: int, pad_id: int) -> np.ndarray:
    """(N, length + 2) ids: [CLS], the sentence's tokens (cut at `length`, padded with [PAD]), [SEP]
    last, the layout of the sampled space (the model reads no attention mask here)."""
    out = np.full((len(sentences), length + 2), pad_id, np.int32)
    out[:, 0], out[:, -1] = cls_id, sep_id
    for i, sentence in enumerate(sentences):
        ids = tokenizer.encode(sentence)[:length]
        out[i, 1:1 + len(ids)] = ids
    return out


def accuracy(model, ids: np.ndarray, labels: np.ndarray, positive: int, batch: int = 256) -> float:
    graphdef, state = nnx.split(model)
    predict = jax.jit(jax.vmap(lambda s, x: nnx.merge(graphdef, s)(x), in_axes=(None, 0)))
    logits = np.concatenate([np.asarray(predict(state, jnp.asarray(ids[i:i + batch])))
                             for i in range(0, len(ids), batch)])
    predicted = (np.argmax(logits, axis=-1) == positive).astype(int)
    return float(np.mean(predicted == labels))


def finetune(model, train_ids: np.ndarray, train_labels: np.ndarray, *, epochs: int = 1, batch_size: int = 32,
             learning_rate: float = 3e-5, seed: int = 0, log_every: int = 200, log=print):
    """Cross-entropy fine-tuning with AdamW (linear decay); returns the model and the loss history."""
    import optax

    steps = max(1, epochs * (len(train_ids) // batch_size))
    schedule = optax.linear_schedule(learning_rate, 0.0, steps)
    optimizer = optax.adamw(schedule, weight_decay=0.01)
    graphdef, params, rest = nnx.split(model, nnx.Param, ...)
    opt_state = optimizer.init(params)

    def loss_fn(p, x, y):
        m = nnx.merge(graphdef, p, rest)
        logits = jax.vmap(m)(x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    @jax.jit
    def update(p, o, x, y):
        loss, grads = jax.value_and_grad(loss_fn)(p, x, y)
        changes, o = optimizer.update(grads, o, p)
        return optax.apply_updates(p, changes), o, loss

    rng = np.random.default_rng(seed)
    history, step, started = [], 0, time.perf_counter()
    for epoch in range(epochs):
        order = rng.permutation(len(train_ids))
        for start in range(0, len(order) - batch_size + 1, batch_size):
            idx = order[start:start + batch_size]
            params, opt_state, loss = update(params, opt_state, jnp.asarray(train_ids[idx]),
                                             jnp.asarray(train_labels[idx]))
            step += 1
            if step % log_every == 0 or step == steps:
                history.append({"step": step, "epoch": epoch, "loss": float(loss)})
                log(f"fine-tune step {step}/{steps}: loss {float(loss):.4f} ({time.perf_counter() - started:.0f} s)")
    return nnx.merge(graphdef, params, rest), history


def finetune_or_load(model_dir: str, base: str, tokenizer, *, length: int, cls_id: int, sep_id: int, epochs: int,
                     seed: int, log=print, data=None) -> tuple[db.DistilBertClassifier, dict]:
    """The fine-tuned model in `model_dir` when there is one, else fine-tuned on GLUE SST-2 from `base`
    and saved there (config.json carries the accuracy); returns (model, info). data: (train,
    validation) lists of (sentence, label), default `load_glue_sst2()`."""
    info_key = "omnijax_sst2_finetune"
    if os.path.isfile(os.path.join(model_dir, hf_checkpoint.CONFIG_FILE)):
        with open(os.path.join(model_dir, hf_checkpoint.CONFIG_FILE)) as f:
            info = json.load(f).get(info_key, {})
        return db.load_distilbert(model_dir), {**info, "loaded": model_dir}
    train, validation = load_glue_sst2() if data is None else data
    model = load_base_for_finetune(base, seed=seed)
    pad = tokenizer.pad_id if tokenizer.pad_id is not None else 0
    x_train = encode_sentences(tokenizer, [s for s, _ in train], length, cls_id, sep_id, pad)
    y_train = np.array([y for _, y in train], np.int32)
    x_val = encode_sentences(tokenizer, [s for s, _ in validation], length, cls_id, sep_id, pad)
    y_val = np.array([y for _, y in validation], np.int32)
    log(f"fine-tuning {base} on GLUE SST-2: {len(train)} sentences, {epochs} epoch(s), length {length}")
    model, history = finetune(model, x_train, y_train, epochs=epochs, seed=seed, log=log)
    acc = accuracy(model, x_val, y_val, positive=1)
    log(f"SST-2 validation accuracy: {acc:.4f} on {len(validation)} sentences")
    info = {"base": base, "epochs": epochs, "length": length, "validation_accuracy": acc,
            "validation_sentences": len(validation), "history": history}
    db.save_distilbert(model, model_dir, {info_key: info})
    return model, info
