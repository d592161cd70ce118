"""Word-level language-modelling corpora as truncated-BPTT token streams.

Two corpora (`TEXT_DATASETS`), each with a vocabulary of 10,000 words including `<unk>` (every
other word) and `<eos>` (the end of each sentence):
- "ptb": the Penn Treebank as Mikolov et al. (2010) prepared it, the standard `ptb.train.txt`,
  `ptb.valid.txt` and `ptb.test.txt` (887k / 70k / 78k words, 929k / 73k / 82k tokens with
  `<eos>`), read from the directory `tfgrow.train.data_dir` names;
- "wordnet_glosses": the definitions and usage examples of WordNet 3.0, offline from Debian's
  `wordnet-base` (`/usr/share/wordnet/data.{noun,verb,adj,adv}`; `tfgrow.train.data_dir`
  overrides the directory): 117,659 glosses, 1.65M tokens with `<eos>`, modern English. A gloss
  `a tangible and visible entity; "it was full of rackets"` gives one sentence per
  `;`-separated part. Tokenised like PTB: lowercase, punctuation dropped, a clitic (`'s`) split
  off, every number `N`. Split by a hash of the synset (part of speech and offset): ~90% train,
  5% valid, 5% test. The 9,998 most frequent training words (91% of the tokens) plus `<unk>`
  and `<eos>` form the vocabulary.

Batching (Zaremba et al. 2014, "Recurrent neural network regularization"): a split's token ids,
read as one stream, are cut into `batch_size` equal parallel streams; batch i holds tokens
[i T, (i + 1) T) of every stream as inputs and the tokens one position later as targets. Row b
of batch i + 1 continues row b of batch i, so a stateful model carries its state across
batches; nothing is shuffled and the last partial window is dropped.
"""

import collections
import dataclasses
import functools
import os
import re
import zlib

import gin
import numpy as np
import tensorflow as tf

from tfgrow.data.info import DatasetInfo, DatasetNotFoundError

UNKNOWN = "<unk>"
END_OF_SENTENCE = "<eos>"
VOCABULARY_SIZE = 10_000
SPLITS = ("train", "valid", "test")
EVAL_SPLIT = "valid"
PTB_FILES = {split: f"ptb.{split}.txt" for split in SPLITS}
DEFAULT_WORDNET_DIR = "/usr/share/wordnet"
WORDNET_FILES = tuple(f"data.{pos}" for pos in ("noun", "verb", "adj", "adv"))
# Words (hyphenated ones whole), clitics such as 's split off, and numbers (-> "N").
_TOKEN = re.compile(r"[a-z]+(?:-[a-z]+)*|'[a-z]+|\d+(?:[.,:/]\d+)*")
# A synset goes to test when its hash is 0 mod 20, to valid when 1, else to train (90/5/5).
_SPLIT_OF_HASH = {0: "test", 1: "valid"}


@gin.configurable(module="tfgrow.data")
@dataclasses.dataclass(frozen=True)
class TextStreams:
    """How a language model's token streams are cut into windows.

    Args:
        num_steps: tokens per window, the steps backpropagation runs through (35 in Zaremba et
            al.'s medium and large models).
    """

    num_steps: int = 35

    def __post_init__(self):
        integer = isinstance(self.num_steps, int) and not isinstance(self.num_steps, bool)
        if not integer or self.num_steps < 1:
            raise ValueError(
                "Expected tfgrow.data.TextStreams.num_steps, the tokens per window, to be an "
                f"integer >= 1. Received: num_steps={self.num_steps!r}. Fix: set e.g. "
                "--gin_bindings='tfgrow.data.TextStreams.num_steps=35'."
            )


@dataclasses.dataclass(frozen=True)
class Corpus:
    """A tokenised corpus.

    Args:
        vocabulary: the words, index = token id; `<eos>` is 0 and `<unk>` is 1.
        splits: split name -> read-only int32 array of token ids, sentences in order.
    """

    vocabulary: tuple
    splits: dict


def is_text_dataset(name):
    """Whether `name` is one of the language-modelling corpora of `TEXT_DATASETS`."""
    return name in TEXT_DATASETS


def read_ptb(directory):
    """Reads the three standard Penn Treebank files: split -> list of tokens.

    Args:
        directory: directory holding `ptb.train.txt`, `ptb.valid.txt` and `ptb.test.txt`.

    Returns:
        dict split -> the split's words in order, `<eos>` after every line.
    """
    paths = {split: os.path.join(directory or "", name) for split, name in PTB_FILES.items()}
    missing = [path for path in paths.values() if directory is None or not os.path.isfile(path)]
    if missing:
        raise DatasetNotFoundError(
            "Expected the Penn Treebank files ptb.train.txt, ptb.valid.txt and ptb.test.txt in "
            f"tfgrow.train.data_dir. Received: data_dir={directory!r}"
            + (f", where {', '.join(missing)} is missing" if directory else "")
            + ". To fix: put the standard files there (simple-examples/data/ptb.*.txt from "
            "simple-examples.tgz on Tomas Mikolov's RNNLM page; 10,000 words, `<unk>` for the "
            "others) and pass --gin_bindings=\"tfgrow.train.data_dir='/path/to/ptb'\"."
        )
    tokens = {}
    for split, path in paths.items():
        with open(path, encoding="utf-8") as f:
            tokens[split] = [token for line in f for token in (*line.split(), END_OF_SENTENCE)]
    return tokens


def read_wordnet_glosses(directory=None):
    """Reads WordNet's glosses as PTB-style sentences: split -> list of tokens.

    Args:
        directory: directory holding `data.noun`, `data.verb`, `data.adj`, `data.adv`;
            None for `/usr/share/wordnet` (Debian package `wordnet-base`).

    Returns:
        dict split -> the split's tokens, `<eos>` after each `;`-separated part of a gloss.
    """
    directory = directory or DEFAULT_WORDNET_DIR
    paths = [os.path.join(directory, name) for name in WORDNET_FILES]
    missing = [path for path in paths if not os.path.isfile(path)]
    if missing:
        raise DatasetNotFoundError(
            f"Expected WordNet's data files {', '.join(WORDNET_FILES)} in {directory!r}. "
            f"Received: {', '.join(missing)} missing. To fix: `apt-get install wordnet-base` "
            "(or `make setup`), or set tfgrow.train.data_dir to a directory holding WordNet 3.0's "
            "data.* files."
        )
    tokens = {split: [] for split in SPLITS}
    for path in paths:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                head, bar, gloss = line.partition(" | ")
                if line.startswith("  ") or not bar:  # the licence header
                    continue
                synset = f"{os.path.basename(path)}:{head[:8]}".encode()
                split = _SPLIT_OF_HASH.get(zlib.crc32(synset) % 20, "train")
                for part in gloss.lower().split(";"):
                    tokens[split] += sentence_tokens(part)
    return tokens


def sentence_tokens(text):
    """PTB-style tokens of one sentence followed by `<eos>`; [] when it has no word.

    Args:
        text: lowercase text.

    Returns:
        list of str: words, clitics split off (`'s`), numbers as `N`, punctuation dropped.

    Example:
    >>> sentence_tokens('"the 2 dogs\\' owner\\'s car-park, 1,500 m"')
    ['the', 'N', 'dogs', 'owner', "'s", 'car-park', 'N', 'm', '<eos>']
    """
    words = ["N" if word[0].isdigit() else word for word in _TOKEN.findall(text)]
    return [*words, END_OF_SENTENCE] if words else []


def build_vocabulary(tokens, size=VOCABULARY_SIZE):
    """The `size` words a model predicts: `<eos>`, `<unk>`, then the most frequent others.

    Args:
        tokens: the training split's tokens.
        size: vocabulary size including `<eos>` and `<unk>`.

    Returns:
        tuple of words, index = token id; ties in frequency broken alphabetically.
    """
    counts = collections.Counter(tokens)
    others = sorted(
        (word for word in counts if word not in (END_OF_SENTENCE, UNKNOWN)),
        key=lambda word: (-counts[word], word),
    )
    return (END_OF_SENTENCE, UNKNOWN, *others[: size - 2])


def token_ids(tokens, vocabulary):
    """Token ids of `tokens` (`<unk>` for words outside `vocabulary`) as an int32 array."""
    index = {word: i for i, word in enumerate(vocabulary)}
    unknown = index[UNKNOWN]
    return np.fromiter((index.get(t, unknown) for t in tokens), np.int32, len(tokens))


@functools.lru_cache(maxsize=4)
def load_corpus(name, data_dir=None):
    """The tokenised corpus `name` of `TEXT_DATASETS` (read once per process).

    Args:
        name: "ptb" or "wordnet_glosses".
        data_dir: the corpus' directory; None for its default (PTB has none).

    Returns:
        A `Corpus`.

    Raises:
        DatasetNotFoundError: its files are missing; the message says what to put where.
    """
    if not is_text_dataset(name):
        raise ValueError(f"Expected a text dataset in {tuple(TEXT_DATASETS)}. Received: {name!r}")
    tokens = TEXT_DATASETS[name](data_dir)
    vocabulary = build_vocabulary(tokens["train"])
    splits = {}
    for split in SPLITS:
        ids = token_ids(tokens[split], vocabulary)
        ids.flags.writeable = False  # shared by every caller of the cache
        splits[split] = ids
    return Corpus(vocabulary, splits)


def text_info(name, data_dir=None, streams=None):
    """The `DatasetInfo` of a text dataset: windows of `num_steps` tokens, next-token targets.

    Args:
        name: "ptb" or "wordnet_glosses".
        data_dir: as `load_corpus`.
        streams: `TextStreams`; None: the gin-configured `tfgrow.data.TextStreams()`.

    Returns:
        A `DatasetInfo` with `input_shape=(num_steps,)`, `num_classes` the vocabulary size and
        `language_model=True`.
    """
    corpus = load_corpus(name, data_dir)
    num_steps = (streams or TextStreams()).num_steps
    return DatasetInfo(
        (num_steps,),
        len(corpus.vocabulary),
        num_windows(len(corpus.splits["train"]), num_steps),
        num_windows(len(corpus.splits[EVAL_SPLIT]), num_steps),
        language_model=True,
    )


def num_windows(num_tokens, num_steps):
    """Windows of `num_steps` inputs whose targets (one token later) exist: `(N - 1) // T`.

    `num_windows(N, T) // B` equals the number of batches `stream_batches` makes for batch
    size B (`(N - 1) // B // T`), so a run counts its steps from it as for images.
    """
    return max(num_tokens - 1, 0) // num_steps


def stream_batches(ids, batch_size, num_steps):
    """Cuts a token stream into truncated-BPTT batches.

    Args:
        ids: 1-d array of token ids.
        batch_size: parallel streams B.
        num_steps: tokens per window T.

    Returns:
        Tuple `(inputs, targets)` of int32 arrays `[num_batches, B, T]`: row b of batch i is
        `ids[b L + i T : b L + (i + 1) T]` with `L = (len(ids) - 1) // B`, its targets the same
        positions plus one.
    """
    ids = np.asarray(ids, np.int32)
    length = (len(ids) - 1) // batch_size
    num_batches = length // num_steps
    used = num_batches * num_steps
    streams = np.arange(batch_size)[:, None] * length + np.arange(used)[None, :]  # [B, used]
    windows = streams.reshape(batch_size, num_batches, num_steps).transpose(1, 0, 2)
    return ids[windows], ids[windows + 1]


def load_text(name, split, *, batch_size, data_dir=None, max_examples=None, streams=None):
    """A split of a text dataset as batches of `(inputs, targets)`, in stream order.

    Args:
        name: "ptb" or "wordnet_glosses".
        split: "train", "valid" or "test".
        batch_size: parallel streams (the model's fixed batch size).
        data_dir: as `load_corpus`.
        max_examples: keep only the first `max_examples` windows' worth of tokens.
        streams: `TextStreams`; None: the gin-configured `tfgrow.data.TextStreams()`.

    Returns:
        A `tf.data.Dataset` of int32 `(inputs [B, T], targets [B, T])` (`stream_batches`).
    """
    if split not in SPLITS:
        raise ValueError(f"Expected a text split in {SPLITS}. Received: split={split!r}")
    ids = load_corpus(name, data_dir).splits[split]
    return _dataset(ids, batch_size, max_examples, streams)


def load_mock_text(split, *, batch_size, max_examples=None, streams=None, seed=0):
    """Random token ids shaped like `load_text`'s batches, for smoke runs without the data.

    Args:
        split: a split name; each split draws its own tokens.
        batch_size, max_examples, streams: as `load_text`; `max_examples` windows (default two
            batches of them).
        seed: seed of the draw.

    Returns:
        A `tf.data.Dataset` as `load_text`'s, over a vocabulary of `VOCABULARY_SIZE`.
    """
    num_steps = (streams or TextStreams()).num_steps
    num_tokens = (max_examples or 2 * batch_size) * num_steps + 1
    rng = np.random.default_rng([seed, zlib.crc32(split.encode())])
    ids = rng.integers(0, VOCABULARY_SIZE, num_tokens, dtype=np.int32)
    return _dataset(ids, batch_size, max_examples, streams)


def mock_text_info(num_examples, streams=None):
    """The `DatasetInfo` of `load_mock_text`'s data: `num_examples` windows in each split."""
    num_steps = (streams or TextStreams()).num_steps
    return DatasetInfo((num_steps,), VOCABULARY_SIZE, num_examples, num_examples, True)


def _dataset(ids, batch_size, max_examples, streams):
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"Expected a positive integer batch_size. Received: {batch_size!r}")
    num_steps = (streams or TextStreams()).num_steps
    if max_examples is not None:
        ids = ids[: max_examples * num_steps + 1]
    inputs, targets = stream_batches(ids, batch_size, num_steps)
    return tf.data.Dataset.from_tensor_slices((inputs, targets)).prefetch(tf.data.AUTOTUNE)


# The one table of text corpora: name -> reader `(data_dir) -> split -> tokens`.
TEXT_DATASETS = {"ptb": read_ptb, "wordnet_glosses": read_wordnet_glosses}
