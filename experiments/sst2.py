"""OmniInput on a sentiment classifier (paper §3.2 "Language classifier", Appendix D): the output
distribution of a fine-tuned DistilBERT's positive-class logit over ALL sentences of --length tokens
between a frozen [CLS] and [SEP].

    python -m experiments.sst2 --length=10                       # distilbert-base-uncased-finetuned-sst-2-english
    python -m experiments.sst2 --length=66 --preset=paper
    python -m experiments.sst2 --model=DIR --length=10           # a local DistilBertForSequenceClassification
    python -m experiments.sst2 --finetune --length=10            # fine-tune distilbert-base-uncased on GLUE SST-2 first

--model is a hub id or a local Hugging Face directory; --finetune instead fine-tunes --finetune_from
on GLUE SST-2 (through `datasets`; the validation accuracy goes to metrics.json) and saves it in
<workdir>/model (a rerun reuses it). The tokenizer (--tokenizer, default the model's) must have the
model's vocabulary; [CLS] / [SEP] are its own unless --cls_id / --sep_id. z is sampled with
token-space proposals on the word embeddings.

Output range (experiments/workflows/text_sampling.py): here the confident end is the HIGH one: the
upper bound is the edge of the highest bin of a range pilot that still holds >= --min_distinct
distinct sentences (or --z_max), the lower bound --z_min or the upper bound minus the bins the
annotation budget scores. Writes rho.csv, rho.png, samples.npz, vocab.json, representatives.csv/.md/
.png (texts per bin, [CLS]/[SEP] stripped), texts.json, range.json and metrics.json (with the
verdict) to --workdir (default runs/sst2-<model>-L<length>); a rerun resumes from the checkpoints.
"""

from __future__ import annotations

import os
import time

from absl import app, flags

from experiments.workflows import text_cli

FLAGS = flags.FLAGS


def define_flags() -> None:
    """sst2's flags (defined when run, not on import); the range and sampling ones are text_cli's."""
    flags.DEFINE_string("model", None, "Hub id or local directory of a DistilBertForSequenceClassification (default "
                        "distilbert-base-uncased-finetuned-sst-2-english; with --finetune, <workdir>/model).")
    flags.DEFINE_boolean("finetune", False, "Fine-tune --finetune_from on GLUE SST-2 (through `datasets`) first.")
    flags.DEFINE_string("finetune_from", "distilbert-base-uncased", "--finetune: the DistilBERT to start from.")
    flags.DEFINE_integer("finetune_epochs", 1, "--finetune: epochs over GLUE SST-2's 67k training sentences.")
    flags.DEFINE_string("tokenizer", None, "Tokenizer directory or hub id (default: the model's).")
    flags.DEFINE_integer("length", 10, "Sentence length L: tokens between [CLS] and [SEP].")
    flags.DEFINE_integer("cls_id", None, "Token frozen first (default: the tokenizer's [CLS]).")
    flags.DEFINE_integer("sep_id", None, "Token frozen last (default: the tokenizer's [SEP]).")
    flags.DEFINE_string("positive_label", None, "Class whose logit is z: index or name (default: the label named "
                        "POSITIVE, else 1).")
    flags.DEFINE_boolean("bf16", False, "Load the weights in bfloat16.")
    flags.DEFINE_float("pilot_span", 20.0,
                       "The range pilot's bins reach this far above the random sentences' median logit.")
    flags.DEFINE_integer("seed", 0, "Seed of sampling (and fine-tuning).")
    text_cli.define_flags("sst2", confident="high", items="sentences", unit="logit units")


def _check_flags() -> None:
    text_cli.check_flags(("finetune_epochs",), ("pilot_span",))
    if FLAGS.finetune and FLAGS.model is not None:
        raise app.UsageError("--finetune fine-tunes --finetune_from and saves it in <workdir>/model; do not give "
                             "--model with it")
    for flag in ("cls_id", "sep_id"):
        if getattr(FLAGS, flag) is not None and getattr(FLAGS, flag) < 0:
            raise app.UsageError(f"--{flag} must be a token id >= 0, got {getattr(FLAGS, flag)}")


def main(argv):
    preset = text_cli.start(argv, _check_flags)
    from experiments.workflows import sst2 as flow
    from experiments.workflows import text_sampling as ts
    from experiments.workflows.lm import model_label
    from omnijax.text.tokenizer import check_vocabulary, load_tokenizer
    from omnijax.training.resume import parameter_digest

    started = time.perf_counter()
    source = FLAGS.finetune_from if FLAGS.finetune else (FLAGS.model or flow.DEFAULT_MODEL)
    workdir = FLAGS.workdir or os.path.join(
        "runs", f"sst2-{'finetuned' if FLAGS.finetune else model_label(source)}-L{FLAGS.length}"
        f"{'-bf16' if FLAGS.bf16 else ''}")
    tokenizer_source = FLAGS.tokenizer or source
    flag = "--tokenizer" if FLAGS.tokenizer else ("--tokenizer (default: --finetune_from)" if FLAGS.finetune
                                                  else "--tokenizer (default: --model)")
    finetune_info = None
    try:
        if FLAGS.finetune:
            model_dir = os.path.join(workdir, "model")
            data = None
            if not os.path.isfile(os.path.join(model_dir, "config.json")):
                ts.log(f"--finetune: loading GLUE SST-2 to fine-tune {source} (saved in {model_dir})")
                data = flow.load_glue_sst2()  # first: without the data there is nothing to fine-tune
            try:
                tokenizer = load_tokenizer(tokenizer_source, name=flag)
            except ValueError as err:
                raise flow.ClassifierError(str(err))
            cls_id, sep_id = flow.frozen_ids(tokenizer, tokenizer.vocab_size, FLAGS.cls_id, FLAGS.sep_id)
            model, finetune_info = flow.finetune_or_load(model_dir, source, tokenizer, length=FLAGS.length,
                                                         cls_id=cls_id, sep_id=sep_id, epochs=FLAGS.finetune_epochs,
                                                         seed=FLAGS.seed, log=ts.log, data=data)
            directory = model_dir
            if FLAGS.bf16:
                model, directory = flow.load_classifier(model_dir, bf16=True)
        else:
            ts.log(f"loading {source} ...")
            model, directory = flow.load_classifier(source, bf16=FLAGS.bf16)
            try:
                tokenizer = load_tokenizer(tokenizer_source, name=flag)
            except ValueError as err:
                raise flow.ClassifierError(str(err))
        vocab = int(model.config.vocab_size)
        try:
            check_vocabulary(tokenizer, vocab, f"{flag}={tokenizer_source}")
        except ValueError as err:
            raise flow.ClassifierError(str(err))
        flow.check_length(model, FLAGS.length)
        cls_id, sep_id = flow.frozen_ids(tokenizer, vocab, FLAGS.cls_id, FLAGS.sep_id)
        label = flow.positive_label(model, FLAGS.positive_label)
    except flow.ClassifierError as err:
        raise app.UsageError(str(err))
    names = model.config.label_names
    ts.log(f"model: DistilBERT from {directory}, vocabulary {vocab}, z = logit of class {label}"
           f"{f' ({names[label]})' if names else ''}; space [CLS] + {vocab}^{FLAGS.length} + [SEP]")

    os.makedirs(workdir, exist_ok=True)
    target = flow.logit_target(model, label)
    space = flow.sentence_space(FLAGS.length, vocab, cls_id, sep_id)
    digest = parameter_digest(model)
    key_record = {"model_digest": digest, "length": FLAGS.length, "cls_id": cls_id, "sep_id": sep_id,
                  "label": label, "bf16": FLAGS.bf16, "proposal": FLAGS.proposal, "seed": FLAGS.seed}
    title = f"{model_label(source)}: class-{label} logit over all [CLS] + {vocab}^{FLAGS.length} + [SEP]"
    metrics = {
        "experiment": "sst2", "output": f"logit of class {label}", "positive": "high",
        "model": source, "model_dir": str(directory), "finetune": finetune_info, "model_digest": digest,
        "label": label, "label_name": names[label] if names else None, "tokenizer": tokenizer_source,
        "vocab_size": vocab, "length": FLAGS.length, "cls_id": cls_id, "sep_id": sep_id}
    if finetune_info and "validation_accuracy" in finetune_info:
        metrics["validation_accuracy"] = finetune_info["validation_accuracy"]
    text_cli.sample_and_finish(workdir, key_record, target, space, confident="high", pilot_far=None,
                               pilot_span=FLAGS.pilot_span, preset=preset, tokenizer=tokenizer, title=title,
                               metrics=metrics, started=started)
    print(f"next: score the sentences of each bin (representatives.md), then precision and recall over all "
          f"sentences (high logit is predicted positive):\n"
          f"  python -m omnijax.annotation serve --run={workdir} --port=8000\n"
          f"  python -m experiments.pr --runs={workdir}")


if __name__ == "__main__":
    define_flags()
    app.run(main)
