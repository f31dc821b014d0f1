"""OmniInput on causal language models (paper §3.2, Appendix I): the output distribution of the mean
NLL per token over ALL sequences of --length tokens, BOS first.

    python -m experiments.lm --model=gpt2 --length=25                      # GPT2-small-25
    python -m experiments.lm --model=gpt2-medium --length=100 --preset=paper
    python -m experiments.lm --model=allenai/OLMo-1B-hf --length=25 --bf16  # OLMo, bf16 weights
    python -m experiments.lm --model=DIR --length=25                       # a local Hugging Face directory

--model is a hub id or a local directory (config.json + model.safetensors); GPT-2 and OLMo are told
apart by config.json's model_type. The tokenizer (for the texts) comes from --tokenizer, default the
--model directory or hub id, and must have the model's vocabulary. The space is V^L (every token of
the vocabulary at each of the L positions); z is sampled with token-space proposals on the input
embeddings (token_gwg default, token_dlp), the weights passed to the compiled calls as arguments.

Output range (experiments/workflows/text_sampling.py says exactly how): the lower bound is the edge
of the lowest bin of a range pilot that still holds >= --min_distinct (30) distinct sequences, or
--z_min; the upper bound --z_max, or the lower bound plus ceil(--annotation_budget /
--annotate_per_bin) bins of --bin_width (0.1). Writes to --workdir (default runs/lm-<model>-L<length>):
rho.csv, rho.png (unconverged bins in red), samples.npz + vocab.json (for the annotation page),
representatives.csv/.md/.png (texts per bin), range.json, metrics.json (with the convergence
verdict), and checkpoints (range-pilot-*/, sampling-*/): a rerun resumes. Then annotate and compare
two models as in the paper's Fig. 3:

    python -m omnijax.annotation serve --run=runs/lm-gpt2-L25
    python -m experiments.pr --runs=runs/lm-gpt2-medium-L25,runs/lm-gpt2-L25     # positive=low from metrics.json
"""

from __future__ import annotations

import os
import time

from absl import app, flags

from experiments.workflows import text_cli

FLAGS = flags.FLAGS


def define_flags() -> None:
    """lm's flags (defined when run, not on import); the range and sampling ones are text_cli's."""
    flags.DEFINE_string("model", "gpt2", "Hub id or local Hugging Face directory of a GPT-2 or OLMo causal LM.")
    flags.DEFINE_string("tokenizer", None, "Tokenizer directory or hub id (default: --model).")
    flags.DEFINE_integer("length", 25, "Sequence length L (sampled tokens; BOS is put before them).")
    flags.DEFINE_integer("bos_id", None, "Token read before the sequence (default: config.json's bos_token_id; "
                         "OLMo: its eos_token_id).")
    flags.DEFINE_boolean("vocab_from_tokenizer", False,
                         "Sample only the tokenizer's ids when the model's embedding has more rows (a padded "
                         "embedding, e.g. OLMo: 50,304 rows, 50,280 tokens); the softmax still covers every row.")
    flags.DEFINE_boolean("bf16", False, "Load the weights in bfloat16 (norms, softmax and logits stay float32).")
    flags.DEFINE_float("pilot_z_min", 0.0, "Lower end of the range pilot's bins (an NLL is >= 0).")
    flags.DEFINE_integer("seed", 0, "Seed of sampling.")
    text_cli.define_flags("lm", confident="low", items="sequences", unit="nats of mean NLL per token")


def _check_flags() -> None:
    text_cli.check_flags()
    if FLAGS.bos_id is not None and FLAGS.bos_id < 0:
        raise app.UsageError(f"--bos_id must be a token id >= 0, got {FLAGS.bos_id}")


def main(argv):
    preset = text_cli.start(argv, _check_flags)
    import omnijax as oj
    from experiments.workflows import lm as flow
    from experiments.workflows import text_sampling as ts
    from omnijax.text.tokenizer import check_vocabulary, load_tokenizer
    from omnijax.training.resume import parameter_digest

    started = time.perf_counter()
    ts.log(f"loading {FLAGS.model} ...")
    try:
        model, family, directory = flow.load_causal_lm(FLAGS.model, bf16=FLAGS.bf16)
    except flow.LMLoadError as err:
        raise app.UsageError(f"--model={FLAGS.model}: {err}")
    vocab = flow.vocab_size(model)
    try:
        bos_id = flow.check_flags(model, family, length=FLAGS.length, bos_id=FLAGS.bos_id)
    except ValueError as err:
        raise app.UsageError(str(err))
    tokenizer_source = FLAGS.tokenizer or FLAGS.model
    flag = "--tokenizer" if FLAGS.tokenizer else "--tokenizer (default: --model)"
    try:
        tokenizer = load_tokenizer(tokenizer_source, name=flag)
    except (ValueError, OSError) as err:
        raise app.UsageError(str(err))
    num_tokens = vocab
    if FLAGS.vocab_from_tokenizer:
        if tokenizer.vocab_size > vocab:
            raise app.UsageError(f"--vocab_from_tokenizer: the tokenizer ({tokenizer.source}) has "
                                 f"{tokenizer.vocab_size} tokens, more than the model's {vocab}")
        num_tokens = tokenizer.vocab_size
    try:
        check_vocabulary(tokenizer, num_tokens, f"{flag}={tokenizer_source}")
    except ValueError as err:
        hint = ""
        if tokenizer.vocab_size < vocab:
            hint = (f" (if the model's embedding is padded past the tokenizer's ids, as OLMo's 50,304 rows for "
                    f"50,280 tokens, --vocab_from_tokenizer samples only the tokenizer's {tokenizer.vocab_size} ids)")
        raise app.UsageError(f"{err}{hint}")
    ts.log(f"model: {family} from {directory}, vocabulary {vocab}, {'bf16' if FLAGS.bf16 else 'float32'}; "
           f"BOS {bos_id}; space {num_tokens}^{FLAGS.length}")

    workdir = FLAGS.workdir or os.path.join(
        "runs", f"lm-{flow.model_label(FLAGS.model)}-L{FLAGS.length}{'-bf16' if FLAGS.bf16 else ''}")
    os.makedirs(workdir, exist_ok=True)
    target = flow.sequence_nll_target(model, family, bos_id, num_tokens)
    space = oj.InputSpace(shape=(FLAGS.length,), num_categories=num_tokens)
    digest = parameter_digest(model)
    key_record = {"model_digest": digest, "length": FLAGS.length, "bos_id": bos_id, "bf16": FLAGS.bf16,
                  "num_tokens": num_tokens,
                  "proposal": FLAGS.proposal, "seed": FLAGS.seed}
    title = f"{flow.model_label(FLAGS.model)}: mean NLL per token over all {num_tokens}^{FLAGS.length} sequences"
    metrics = {
        "experiment": "lm", "output": "mean NLL per token, BOS first", "positive": "low",
        "model": FLAGS.model, "model_dir": str(directory), "family": family, "model_digest": digest,
        "tokenizer": tokenizer_source, "vocab_size": vocab, "space_vocab": num_tokens, "length": FLAGS.length,
        "bos_id": bos_id}
    text_cli.sample_and_finish(workdir, key_record, target, space, confident="low", pilot_far=FLAGS.pilot_z_min,
                               pilot_span=0.0, preset=preset, tokenizer=tokenizer, title=title, metrics=metrics,
                               started=started)
    print(f"next: score the sequences of each bin (representatives.md shows them as text), then precision and "
          f"recall over all sequences (NLL: low is predicted positive):\n"
          f"  python -m omnijax.annotation serve --run={workdir} --port=8000\n"
          f"  python -m experiments.pr --runs={workdir},OTHER_RUN")


if __name__ == "__main__":
    define_flags()
    app.run(main)
