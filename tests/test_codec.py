"""Codec: CTC targets and greedy decoding with confidences, the seed's one-hot codes, label checks."""

import math

import pytest
import torch

from scrapy_captcha.codec import SEED_ALPHABET, Codec, LabelError

codec = Codec(SEED_ALPHABET)


def path_logits(classes: list[int], num_classes: int, probabilities: list[float] | None = None) -> torch.Tensor:
    """(1, T, C) logits whose softmax gives ``classes[t]`` probability ``probabilities[t]`` at frame t."""
    probabilities = probabilities or [0.9] * len(classes)
    frames = torch.empty(len(classes), num_classes)
    for t, (k, p) in enumerate(zip(classes, probabilities)):
        frames[t] = math.log((1 - p) / (num_classes - 1))
        frames[t, k] = math.log(p)
    return frames[None]


def ctc_path(targets: list[int]) -> list[int]:
    """A frame sequence that CTC collapses to ``targets``: each class held two frames, then a blank."""
    frames = [0]
    for k in targets:
        frames += [k, k, 0]
    return frames


def test_seed_alphabet_has_no_look_alikes():
    assert len(SEED_ALPHABET) == 58
    assert not set("loIO") & set(SEED_ALPHABET)
    assert codec.num_classes == 59


@pytest.mark.parametrize("text", ["Ab3x", "aab", "3AA3", "zzzz", "7", "ABCDEFGH"])
def test_ctc_round_trip(text):
    targets = codec.encode(text)
    assert all(1 <= k < codec.num_classes for k in targets)  # 0 is the blank
    assert [SEED_ALPHABET[k - 1] for k in targets] == list(text)
    (prediction,) = codec.decode_ctc(path_logits(ctc_path(targets), codec.num_classes))
    assert prediction.text == text
    assert len(prediction.char_confidences) == len(text)


def test_repeated_letters_need_a_blank_between_them():
    a = codec.encode("a")[0]
    merged = path_logits([a, a, a], codec.num_classes)
    separated = path_logits([a, 0, a], codec.num_classes)
    assert codec.decode_ctc(merged)[0].text == "a"
    assert codec.decode_ctc(separated)[0].text == "aa"


def test_ctc_confidences():
    a, b = codec.encode("ab")
    frames = [0, a, a, 0, b, 0]
    probabilities = [0.99, 0.6, 0.9, 0.95, 0.7, 0.98]
    (prediction,) = codec.decode_ctc(path_logits(frames, codec.num_classes, probabilities))
    assert prediction.text == "ab"
    # a character's confidence is its best frame; the captcha's is the whole path's probability
    assert prediction.char_confidences == pytest.approx((0.9, 0.7), abs=1e-5)
    assert prediction.confidence == pytest.approx(math.prod(probabilities), rel=1e-4)


def test_ctc_confidences_are_probabilities_on_random_logits():
    torch.manual_seed(0)
    logits = torch.randn(16, 20, codec.num_classes) * 4
    for prediction in codec.decode_ctc(logits):
        assert 0 < prediction.confidence <= 1
        assert len(prediction.char_confidences) == len(prediction.text)
        for confidence in prediction.char_confidences:
            assert 0 < confidence <= 1
            assert prediction.confidence <= confidence


def test_ctc_all_blank_is_empty_text():
    (prediction,) = codec.decode_ctc(path_logits([0] * 20, codec.num_classes))
    assert prediction.text == ""
    assert prediction.char_confidences == ()
    assert 0 < prediction.confidence <= 1


def test_ctc_decodes_a_batch_in_order():
    texts = ["Ab3x", "xyz", "99"]
    length = 3 * 8 + 1
    paths = [ctc_path(codec.encode(t)) for t in texts]
    logits = torch.cat([path_logits(p + [0] * (length - len(p)), codec.num_classes) for p in paths])
    assert [p.text for p in codec.decode_ctc(logits)] == texts


def test_one_hot_round_trip():
    code = codec.one_hot_encode("Ab3x", 4)
    assert code.shape == (4 * 58,)
    assert code.sum() == 4
    assert code.view(4, 58).argmax(-1).tolist() == [SEED_ALPHABET.index(c) for c in "Ab3x"]
    batch = torch.stack([code, codec.one_hot_encode("zz99", 4)]) * 10
    first, second = codec.decode_one_hot(batch)
    assert (first.text, second.text) == ("Ab3x", "zz99")
    assert len(first.char_confidences) == 4
    assert all(0 < c <= 1 for c in first.char_confidences)
    assert first.confidence == pytest.approx(math.prod(first.char_confidences), rel=1e-5)
    assert first.confidence <= min(first.char_confidences)


@pytest.mark.parametrize(
    "call, message",
    [
        (lambda: codec.encode("Ab-x"), "outside the alphabet: '-'"),
        (lambda: codec.encode("lOIo"), "outside the alphabet: 'IOlo'"),
        (lambda: codec.encode(""), "empty"),
        (lambda: codec.check("abcdefghj", max_length=8), "longer than 8"),
        (lambda: codec.one_hot_encode("abcde", 4), "longer than 4"),
        (lambda: codec.one_hot_encode("abc", 4), "not 4 characters long"),
        (lambda: codec.one_hot_encode("ab c", 4), "outside the alphabet: ' '"),
    ],
)
def test_label_errors(call, message):
    with pytest.raises(LabelError, match=message) as info:
        call()
    assert isinstance(info.value, ValueError)


def test_bad_alphabets():
    with pytest.raises(ValueError, match="empty"):
        Codec("")
    with pytest.raises(ValueError, match="repeats characters: 'a'"):
        Codec("abca")
