"""Tests for `tfgrow.data.text`: PTB and WordNet readers, vocabulary, truncated-BPTT batches."""

import os

import numpy as np
import pytest

from tfgrow import data
from tfgrow.data import run_data, text

# A 3-line PTB split: "a" 5 times, "b" 3, "c" 2, "<unk>" 1, "d" once, plus 3 <eos>.
PTB_TRAIN = "a b a c\na <unk> b c a\nb a d\n"


@pytest.fixture
def ptb_dir(tmp_path):
    (tmp_path / "ptb.train.txt").write_text(PTB_TRAIN)
    (tmp_path / "ptb.valid.txt").write_text("a z b\n")
    (tmp_path / "ptb.test.txt").write_text("c c\nd\n")
    return str(tmp_path)


def test_ptb_tokens_end_every_line_with_eos(ptb_dir):
    tokens = text.read_ptb(ptb_dir)
    assert tokens["valid"] == ["a", "z", "b", "<eos>"]
    assert tokens["test"] == ["c", "c", "<eos>", "d", "<eos>"]
    assert len(tokens["train"]) == 12 + 3


def test_vocabulary_is_eos_unk_then_words_by_frequency_and_unknown_words_become_unk(ptb_dir):
    corpus = text.load_corpus("ptb", ptb_dir)
    assert corpus.vocabulary == ("<eos>", "<unk>", "a", "b", "c", "d")
    # "z" never occurs in training: <unk> (id 1).
    np.testing.assert_array_equal(corpus.splits["valid"], [2, 1, 3, 0])
    # Capped at 4 words: "c" and "d" (the rarest) fall back to <unk>; ties break alphabetically.
    small = text.build_vocabulary(text.read_ptb(ptb_dir)["train"], size=4)
    assert small == ("<eos>", "<unk>", "a", "b")
    np.testing.assert_array_equal(text.token_ids(["c", "a", "<eos>"], small), [1, 2, 0])
    assert text.build_vocabulary(["y", "x", "y", "x", "w"], size=4)[2:] == ("x", "y")


def test_missing_ptb_file_names_the_path_and_the_fix(ptb_dir):
    os.remove(os.path.join(ptb_dir, "ptb.test.txt"))
    with pytest.raises(data.DatasetNotFoundError) as error:
        data.dataset_info("ptb", data_dir=ptb_dir)
    message = str(error.value)
    assert os.path.join(ptb_dir, "ptb.test.txt") in message
    assert "tfgrow.train.data_dir" in message and "simple-examples" in message
    with pytest.raises(data.DatasetNotFoundError, match="data_dir=None"):
        data.dataset_info("ptb")


def test_stream_batches_continue_each_row_and_shift_targets_by_one():
    ids = np.arange(1000) * 3  # distinct, so every position is identifiable
    batch_size, num_steps = 4, 7
    inputs, targets = text.stream_batches(ids, batch_size, num_steps)
    length = (len(ids) - 1) // batch_size  # 249 tokens per stream
    assert inputs.shape == targets.shape == (length // num_steps, batch_size, num_steps)
    assert len(inputs) == text.num_windows(len(ids), num_steps) // batch_size == 35
    # Row b of batch i + 1 starts where row b of batch i stopped: read across batches, row b
    # is the contiguous stream ids[b L : b L + 35 T].
    rows = inputs.transpose(1, 0, 2).reshape(batch_size, -1)
    for b in range(batch_size):
        np.testing.assert_array_equal(rows[b], ids[b * length : b * length + rows.shape[1]])
    # The target of every position is the next token of the same stream.
    np.testing.assert_array_equal(targets, inputs + 3)


def test_load_text_batches_in_stream_order_and_truncates_to_windows(ptb_dir):
    corpus = text.load_corpus("ptb", ptb_dir)
    streams = text.TextStreams(num_steps=2)
    batches = list(text.load_text("ptb", "train", batch_size=3, data_dir=ptb_dir, streams=streams))
    # 15 tokens: 14 inputs with a next token, 4 per stream, 2 windows of 2 each.
    assert len(batches) == 2
    inputs = np.stack([x.numpy() for x, _ in batches])
    targets = np.stack([y.numpy() for _, y in batches])
    expected_inputs, expected_targets = text.stream_batches(corpus.splits["train"], 3, 2)
    np.testing.assert_array_equal(inputs, expected_inputs)
    np.testing.assert_array_equal(targets, expected_targets)
    assert inputs.dtype == np.int32
    truncated = text.load_text(
        "ptb", "train", batch_size=1, data_dir=ptb_dir, max_examples=3, streams=streams
    )
    assert len(list(truncated)) == 3


def test_text_dataset_info_counts_windows(ptb_dir):
    info = data.dataset_info("ptb", data_dir=ptb_dir)
    assert info.language_model and info.input_shape == (35,) and info.num_classes == 6
    info = text.text_info("ptb", ptb_dir, text.TextStreams(num_steps=2))
    assert (info.num_train, info.num_eval) == ((15 - 1) // 2, (4 - 1) // 2)
    assert data.eval_split("ptb") == "valid" and data.eval_split("cifar10") == "test"


def test_missing_corpus_gives_mock_streams_only_when_asked():
    with pytest.raises(data.DatasetNotFoundError):
        run_data.load_run_data("ptb", None, 4, 0, 8, 4, mock_data_if_missing=False)
    info, train, evaluation = run_data.load_run_data("ptb", None, 4, 0, 8, 4, True)
    assert info.language_model and info.num_classes == text.VOCABULARY_SIZE
    batches = list(train)
    assert len(batches) == 2 and len(list(evaluation)) == 1
    inputs, targets = batches[0]
    assert inputs.shape == targets.shape == (4, 35)
    np.testing.assert_array_equal(inputs.numpy()[:, 1:], targets.numpy()[:, :-1])
    assert len(list(run_data.load_test_data("ptb", None, 4, 0, 4, True))) == 1


def write_wordnet(directory, lines_per_file):
    header = "  1 This software and database is being provided to you, the LICENSEE  \n"
    for name in text.WORDNET_FILES:
        with open(os.path.join(directory, name), "w") as f:
            f.write(header + "".join(lines_per_file.get(name, [])))


def test_wordnet_glosses_give_one_sentence_per_part_and_a_deterministic_split(tmp_path):
    line = '{:08d} 03 n 01 dog 0 000 | a member of the genus Canis; "the dog\'s 2 bones"  \n'
    write_wordnet(tmp_path, {"data.noun": [line.format(i) for i in range(400)]})
    tokens = text.read_wordnet_glosses(str(tmp_path))
    sentence = ["a", "member", "of", "the", "genus", "canis", "<eos>"]
    sentence += ["the", "dog", "'s", "N", "bones", "<eos>"]
    sizes = {split: len(tokens[split]) // len(sentence) for split in text.SPLITS}
    assert sum(sizes.values()) == 400 and tokens["train"][: len(sentence)] == sentence
    # ~90/5/5 by synset hash: 400 synsets give 360 +- 3 sigma (18) to train.
    assert 342 <= sizes["train"] <= 378 and sizes["valid"] >= 5 and sizes["test"] >= 5
    assert text.read_wordnet_glosses(str(tmp_path)) == tokens


def test_missing_wordnet_names_the_debian_package(tmp_path):
    with pytest.raises(data.DatasetNotFoundError, match="apt-get install wordnet-base"):
        text.read_wordnet_glosses(str(tmp_path))


def test_the_installed_wordnet_corpus_has_ptb_like_size_and_vocabulary():
    # Debian's wordnet-base, installed by `make setup`; reading and tokenising takes ~1 s.
    corpus = text.load_corpus("wordnet_glosses")
    sizes = {split: len(ids) for split, ids in corpus.splits.items()}
    assert len(corpus.vocabulary) == text.VOCABULARY_SIZE
    assert 1_400_000 < sizes["train"] < 1_600_000
    for split in ("valid", "test"):
        assert 0.04 < sizes[split] / sum(sizes.values()) < 0.06
    unknown = np.mean(corpus.splits["train"] == corpus.vocabulary.index("<unk>"))
    assert 0.05 < unknown < 0.10  # the 9,998 most frequent words cover ~92% of the tokens
