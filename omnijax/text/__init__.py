"""Text for token-space runs: tokenizers (`load_tokenizer`, `check_vocabulary`) and the
representatives of a run as decoded text (`write_text_representatives`)."""

from omnijax.text.representatives import (TEXTS_FILE, frozen_text, representative_texts, sequence_text,
                                          write_text_representatives, write_texts_json)
from omnijax.text.tokenizer import TextTokenizer, TokenizerError, check_vocabulary, load_tokenizer, strip_frozen

__all__ = ["TEXTS_FILE", "TextTokenizer", "TokenizerError", "check_vocabulary", "frozen_text", "load_tokenizer",
           "representative_texts", "sequence_text", "strip_frozen", "write_text_representatives",
           "write_texts_json"]
