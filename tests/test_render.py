"""The renderer (trainer/render): every family draws, labels are exact, sizes and lengths stay in
range, fonts are found or refused clearly, the plug-in and the contact sheet work."""

from __future__ import annotations

import random
import shutil
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from trainer import cli
from trainer.generate import GeneratorSpec
from trainer.render import (FAMILIES, GENERALIST_ALPHABET, MIXES, Drawer, PluginError, TextSpec, build_drawer,
                            label_of, parse_mix)
from trainer.render.base import ARITHMETIC_SYMBOLS
from trainer.render.fonts import Font, FontSet, MissingFontsError, find_fonts
from trainer.render.layout import TextLayer, TextStyle, _glyph_masks, pick_style
from trainer.render.styled import ASPECT, MAX_SIZE, MIN_SIZE, canvas_size

LETTERS = GENERALIST_ALPHABET.replace(ARITHMETIC_SYMBOLS, "")
OWN_FAMILIES = ("plain", "styled", "arithmetic")


def draws(drawer: Drawer, count: int, seed: int = 0) -> list[tuple[Image.Image, str]]:
    rng = random.Random(seed)
    return [drawer.draw(rng) for _ in range(count)]


@pytest.mark.parametrize("family", [f for f in FAMILIES if f not in ("plugin", "junk")])
@pytest.mark.parametrize("difficulty", [0.0, 1.0])
def test_every_family_draws_images_with_labels_in_the_alphabet(family, difficulty):
    drawer = build_drawer(family, TextSpec(LETTERS, (1, 12)), difficulty=difficulty)
    for image, label in draws(drawer, 25, seed=len(family)):
        assert isinstance(image, Image.Image) and image.mode in ("RGB", "L")
        assert label and set(label) <= set(GENERALIST_ALPHABET), label
        assert image.getextrema() != ((image.getextrema()[0][0],) * 2,) * 3, "a blank image"


def test_the_junk_family_draws_text_free_images_labelled_empty_and_they_train():
    import torch

    from scrapy_captcha.image import to_tensor
    from scrapy_captcha.model import ModelConfig
    from trainer.data import Collate
    from trainer.train import Criterion

    drawer = build_drawer("0.7:1,junk:1", TextSpec("abc", (4, 4)))
    drawn = draws(drawer.only("junk"), 60, seed=2)
    assert {label for _, label in drawn} == {""}
    assert all(112 <= w <= 224 and 42 <= h <= 84 for w, h in (image.size for image, _ in drawn))  # around 160 x 60
    colours = [len(image.getcolors(1 << 16) or range(1 << 16)) for image, _ in drawn]
    assert min(colours) == 1 and max(colours) > 1000  # one-colour images and noise among them
    assert {len(label) for _, label in draws(drawer, 60, seed=3)} == {0, 4}  # mixed with captchas
    with pytest.raises(ValueError, match="draws no text"):
        drawer.only("junk").families[0].render("ab", random.Random(0))
    config = ModelConfig(alphabet="abc", resize="height", height=32, hidden=16)
    batch = Collate(config)([(to_tensor(drawn[0][0], config), ""), (to_tensor(drawn[1][0], config), "ab")])
    assert batch.targets.tolist() == [1, 2] and batch.target_lengths.tolist() == [0, 2]
    logits = torch.zeros(2, 10, 4)
    logits[0, :, 0] = 9.0  # the first image read as all blanks: its empty target costs almost nothing
    losses = torch.nn.functional.ctc_loss(logits.log_softmax(-1).transpose(0, 1), batch.targets, torch.full((2,), 10),
                                          batch.target_lengths, reduction="none")
    assert losses[0] < 0.01 < losses[1] and torch.isfinite(Criterion(config)(logits, batch, torch.device("cpu")))


@pytest.mark.parametrize("family", OWN_FAMILIES)
def test_our_families_keep_sizes_and_aspect_ratios_in_range(family):
    drawer = build_drawer(family, TextSpec(LETTERS, (1, 12)), difficulty=1.0)
    sizes = [image.size for image, _ in draws(drawer, 150, seed=3)]
    for width, height in sizes:
        assert MIN_SIZE[0] <= width <= MAX_SIZE[0] and MIN_SIZE[1] <= height <= MAX_SIZE[1], (width, height)
        # a canvas forced up to the minimum size may leave the aspect range, never by much
        assert ASPECT[0] * 0.9 <= width / height <= max(ASPECT[1], MIN_SIZE[0] / MIN_SIZE[1]) * 1.1, (width, height)
    widths = sorted(w for w, _ in sizes)
    assert widths[0] < 120 and widths[-1] > 300, "sizes should spread from small to large"


def test_lengths_stay_in_range_and_cover_it():
    drawer = build_drawer("styled", TextSpec(LETTERS, (1, 12)))
    lengths = {len(label) for _, label in draws(drawer, 300, seed=4)}
    assert lengths == set(range(1, 13))
    drawer = build_drawer("plain", TextSpec("abc", (3, 5)))
    assert all(3 <= len(label) <= 5 and set(label) <= set("abc") for _, label in draws(drawer, 50))


def test_every_character_is_drawn_whole_inside_the_canvas(monkeypatch):
    """Labels are exact: each character of the label is one glyph with ink, and none is cut off."""
    painted = []
    original = TextLayer.paint

    def spy(layer, canvas, left, top):
        painted.append((layer, canvas.size, left, top))
        original(layer, canvas, left, top)

    monkeypatch.setattr(TextLayer, "paint", spy)
    rng = random.Random(5)
    drawer = build_drawer("styled", TextSpec(LETTERS, (1, 12)), difficulty=1.0)
    for _ in range(80):
        painted.clear()
        text = drawer.families[0].text(rng, drawer.texts[0])
        drawer.families[0].render(text, rng, 1.0)
        (layer, (width, height), left, top), = painted
        assert len(layer.glyphs) == len(label_of(text))
        for glyph in layer.glyphs:
            assert glyph.mask.getbbox() is not None, f"an empty glyph in {text!r}"
            x, y = glyph.x - layer.box[0] + left, glyph.y - layer.box[1] + top
            assert 0 <= x and x + glyph.mask.width <= width and 0 <= y and y + glyph.mask.height <= height, text


def test_the_label_is_the_drawn_text_case_for_case_without_spaces():
    class Recording:
        name = "recording"
        drawn: list[str] = []

        def text(self, rng, spec):
            return "aB 3c"

        def render(self, text, rng, difficulty=1.0):
            self.drawn.append(text)
            return Image.new("RGB", (60, 20), "white")

    recorder = Recording()
    _, label = Drawer([recorder], [1.0], [TextSpec("x")]).draw(random.Random(0))
    assert recorder.drawn == ["aB 3c"] and label == "aB3c"


def test_our_families_are_repeatable_from_the_seed():
    drawer = build_drawer("styled", TextSpec(LETTERS, (1, 12)))
    first, second = draws(drawer, 5, seed=9), draws(drawer, 5, seed=9)
    assert [label for _, label in first] == [label for _, label in second]
    assert all(a.tobytes() == b.tobytes() for (a, _), (b, _) in zip(first, second))


def test_the_generalist_mix_keeps_the_seed_task_in_it():
    drawer = build_drawer("generalist", TextSpec(GENERALIST_ALPHABET, (1, 12)))
    drawn = draws(drawer, 400, seed=1)
    shares = {name: count / 400 for name, count in drawer.drawn.items()}
    assert set(shares) == set(MIXES["generalist"])
    assert shares["0.7"] + shares["0.5"] > 0.15
    seed_style = [label for (image, label) in drawn if image.size == (160, 60) and len(label) == 4]
    assert seed_style, "the library styles draw the seed task's 4-character texts"
    plain_labels = [label for (_, label) in drawn if not any(c in "=?" for c in label)]
    assert plain_labels


def test_narrow_rich_texts_come_in_their_share_and_leave_other_mixes_as_they_drew():
    from trainer.render.base import NARROW_CHARACTERS, random_text

    rng = random.Random(5)
    texts = [random_text(rng, LETTERS, (8, 8), narrow=0.25) for _ in range(2000)]
    narrow = [sum(c in NARROW_CHARACTERS for c in text) / len(text) for text in texts]
    rich = sum(share >= 0.3 for share in narrow) / len(texts)  # a rich text holds 0.4 + 0.6 x 9/62 narrow ones on average
    assert 0.18 < rich < 0.35, rich
    assert all(len(text) == 8 and set(text) <= set(LETTERS) for text in texts)
    # at 0 no draw is spent on it: a seed draws the texts it drew before the option existed
    before, now = random.Random(7), random.Random(7)
    assert ["".join(before.choice(LETTERS) for _ in range(before.randint(1, 12))) for _ in range(50)] == \
        [random_text(now, LETTERS, (1, 12)) for _ in range(50)]
    wide, narrow_mix = (build_drawer(mix, TextSpec(GENERALIST_ALPHABET, (1, 12))) for mix in ("generalist-wide", "generalist-narrow"))
    assert MIXES["generalist-narrow"] == MIXES["generalist-wide"]
    share = [sum(c in NARROW_CHARACTERS for _, label in draws(d, 300, seed=2) for c in label) for d in (wide, narrow_mix)]
    assert share[1] > 1.2 * share[0], share


def test_parse_mix_names_and_weights():
    assert parse_mix("styled") == {"styled": 1.0}
    assert parse_mix("styled:3,0.7:1") == {"styled": 3.0, "0.7": 1.0}
    assert parse_mix("mixed") == {"0.7": 1, "0.5": 1}
    for bad, words in [("fancy", "unknown renderer family 'fancy'"), ("styled:x", "bad weight"), ("styled:0", "no positive"),
                       ("styled:-1", "negative")]:
        with pytest.raises(ValueError, match=words):
            parse_mix(bad)


# -- fonts ---------------------------------------------------------------------------------------

def test_installed_fonts_are_many_families_that_draw_the_whole_alphabet():
    fonts = FontSet.discover()
    assert len(fonts.families) >= 8
    assert not any("symbol" in name.lower() or "dingbat" in name.lower() for name in fonts.families)


def test_too_few_fonts_is_a_clear_error_not_a_fallback(tmp_path):
    with pytest.raises(MissingFontsError, match=r"at least 8 families.*found 0.*apt-get install fonts-"):
        FontSet([])
    one = [Font("/x/a.ttf", "A")] * 3
    with pytest.raises(MissingFontsError, match="found 1"):
        FontSet(one)
    with pytest.raises(MissingFontsError, match="is not a folder"):
        find_fonts((str(tmp_path / "missing"),))


def test_fonts_dir_adds_fonts(tmp_path):
    source = next(Path(font.path) for fonts in FontSet.discover().families.values() for font in fonts if font.path.endswith(".ttf"))
    shutil.copy(source, tmp_path / "mine.ttf")
    (tmp_path / "notes.txt").write_text("not a font")
    found = find_fonts((str(tmp_path),), system=False)
    assert [Path(f.path).name for f in found] == ["mine.ttf"]
    assert len(FontSet(found, min_families=1)) == 1


# -- plug-in and preview ------------------------------------------------------------------------

@pytest.fixture
def plugin_module(tmp_path, monkeypatch):
    (tmp_path / "site_captcha.py").write_text(textwrap.dedent("""
        from PIL import Image, ImageDraw

        def draw(text):
            image = Image.new("RGB", (30 + 12 * len(text), 32), "white")
            ImageDraw.Draw(image).text((5, 8), text, fill="black")
            return image

        def broken(text):
            return text

        NOT_CALLABLE = 3
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "site_captcha"
    sys.modules.pop("site_captcha", None)


def test_the_plugin_generator_writes_a_data_set(plugin_module, tmp_path, capsys):
    out = tmp_path / "set"
    assert cli.main(["generate", str(out), "--count", "12", "--workers", "1", "--seed", "1",
                     "--generator", f"{plugin_module}:draw", "--length", "3-5"]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert len(names) == 12
    for path in out.iterdir():
        label = path.stem.split("-", 1)[1]
        with Image.open(path) as image:
            assert image.width == 30 + 12 * len(label) and 3 <= len(label) <= 5


def test_the_plugin_can_be_mixed_with_our_families(plugin_module):
    spec = GeneratorSpec(style="plugin:1,plain:1", plugin=f"{plugin_module}:draw", alphabet=LETTERS, lengths=(2, 6))
    generator = spec.generator(random.Random(0))
    for _ in range(30):
        generator.draw()
    assert set(generator.drawer.drawn) == {"plugin", "plain"}


@pytest.mark.parametrize("target, words", [
    ("site_captcha", "must be 'module:function'"),
    ("no_such_module_here:draw", "cannot import"),
    ("site_captcha:missing", "has no attribute"),
    ("site_captcha:NOT_CALLABLE", "is not callable"),
])
def test_a_bad_plugin_is_named(plugin_module, target, words):
    with pytest.raises(PluginError, match=words):
        build_drawer("plugin", TextSpec("ab"), plugin=target)


def test_a_plugin_that_returns_no_image_is_named(plugin_module, tmp_path, capsys):
    code = cli.main(["generate", str(tmp_path / "set"), "--count", "3", "--workers", "1", "--generator", f"{plugin_module}:broken"])
    assert code == 2
    assert "returned str" in capsys.readouterr().err and not (tmp_path / "set").exists()


def test_a_plugin_left_out_of_the_mix_is_refused(plugin_module):
    with pytest.raises(PluginError, match="leaves it out"):
        build_drawer("styled", TextSpec("ab"), plugin=f"{plugin_module}:draw")


def test_preview_draws_a_contact_sheet_with_a_row_per_family(tmp_path, capsys):
    sheet = tmp_path / "docs" / "sheet.png"
    assert cli.main(["generate", "--preview", str(sheet), "--style", "generalist", "--alphabet", "generalist",
                     "--length", "1-12", "--seed", "3"]) == 0
    with Image.open(sheet) as image:
        rows = len(MIXES["generalist"]) + 2  # every family, then styled and arithmetic at the curriculum's start
        assert image.format == "PNG" and image.height == rows * 104 and image.width > 1000
    assert "contact sheet" in capsys.readouterr().out


def test_generate_without_out_or_preview_is_an_error(capsys):
    assert cli.main(["generate"]) == 2
    assert "needs OUT and --count" in capsys.readouterr().err


def solid_style(size: int, weight: int) -> TextStyle:
    """Upright solid text of one size, in ``weight``, nothing else varied."""
    return TextStyle(size=size, spacing=0, rotation=0, scale_jitter=0, baseline_jitter=0, mixed_fonts=False,
                     fill="solid", stroke=2, colour_per_char=False, weight=weight)


def test_stroke_weight_makes_glyphs_heavier_or_thinner_and_keeps_them_whole():
    font = next(font.path for fonts in FontSet.discover().families.values() for font in fonts
                if font.name == "DejaVuSans")
    ink = {}
    for weight in (-1, 0, 3):
        mask, contour, _, _ = _glyph_masks("H", font, 48, solid_style(48, weight))
        ink[weight] = int((np.asarray(mask) > 127).sum())
        assert contour is None and mask.getbbox() is not None
    assert ink[-1] < ink[0] < ink[3], ink


def test_a_hairline_font_is_never_thinned_away():
    hairlines = [font.path for fonts in FontSet.discover().families.values() for font in fonts
                 if any(word in font.name.lower() for word in ("hairline", "thin"))]
    if not hairlines:
        pytest.skip("no hairline or thin font installed")

    def ink(path: str, char: str, weight: int) -> int:
        return int(np.asarray(_glyph_masks(char, path, 28, solid_style(28, weight))[0], dtype=np.int64).sum())

    for path in hairlines:
        for char in "il1ITx":
            assert ink(path, char, -1) >= 0.4 * ink(path, char, 0) > 0, (path, char)


def test_stroke_weights_are_drawn_in_the_shares_the_styles_promise():
    rng = random.Random(2)
    styles = [pick_style(rng, 40, 0.5) for _ in range(2000)]
    solid = [style.weight for style in styles if style.fill == "solid"]
    assert 0.12 < sum(w > 0 for w in solid) / len(solid) < 0.28
    assert 0.05 < sum(w < 0 for w in solid) / len(solid) < 0.15
    assert all(style.weight == 0 for style in styles if style.fill != "solid"), "outlines keep their own stroke"
    assert all(pick_style(rng, 20, 0.5).weight >= 0 for _ in range(500)), "small glyphs are never thinned"


def test_some_texts_fill_the_image_edge_to_edge_and_some_only_a_corner():
    rng = random.Random(3)
    fills = []
    for _ in range(2000):
        width, height = canvas_size((200, 40), rng, margin=0.02)
        fills.append((200 / width, 40 / height))
    edge_to_edge = sum(fx >= 0.9 and fy >= 0.86 for fx, fy in fills) / len(fills)
    corner = sum(fx <= 0.7 and fy <= 0.5 for fx, fy in fills) / len(fills)
    assert 0.08 < edge_to_edge < 0.2 and 0.1 < corner < 0.25, (edge_to_edge, corner)


def test_labels_repeat_from_the_seed_although_the_library_styles_draw_from_secrets():
    """captcha 0.7.1 adds a random number of spaces from ``secrets``; the 0.5 style draws each one's
    glyph, so without a source of its own it would shift every later label and image of a mix."""
    drawer = build_drawer("0.5:3,styled:1", TextSpec(LETTERS, (1, 12)))
    first, second = draws(drawer, 40, seed=11), draws(drawer, 40, seed=11)
    assert [label for _, label in first] == [label for _, label in second]

    def library_size(label: str) -> tuple[int, int]:
        return (max(160, round(160 * len(label) / 6)) if len(label) > 6 else 160, 60)

    ours = [(a, b) for (a, label), (b, _) in zip(first, second) if a.size != library_size(label)]
    assert len(ours) >= 5 and all(a.tobytes() == b.tobytes() for a, b in ours)


def test_the_tangled_family_draws_its_clutter_in_the_texts_own_ink_and_weight(monkeypatch):
    from trainer.render import styled

    tangles = []
    real_tangle = styled.tangle

    def spy(image, rng, amount, ink, width):
        tangles.append((ink, width, image.copy()))
        real_tangle(image, rng, amount, ink, width)
        tangles[-1] += (image.copy(),)

    style_seen = []
    real_lay_out = styled.lay_out
    monkeypatch.setattr(styled, "tangle", spy)
    monkeypatch.setattr(styled, "lay_out", lambda *a: style_seen.append(a[2]) or real_lay_out(*a))
    drawer = build_drawer("tangled", TextSpec(LETTERS, (1, 12)))
    rng = random.Random(11)
    for _ in range(30):
        text = drawer.families[0].text(rng, drawer.texts[0])
        style_seen.clear()
        tangles.clear()
        drawer.families[0].render(text, rng, 1.0)
        (style,) = style_seen
        assert style.fill == "solid" and not style.colour_per_char and style.weight >= 0
        ((ink, width, before, after),) = tangles
        assert 1 <= width <= style.size * 0.14 + style.weight + 1
        changed = np.any(np.asarray(before) != np.asarray(after), axis=2)
        assert changed.any(), "the tangle drew nothing"
        # what the tangle drew is the text's ink, nothing else
        assert {tuple(pixel) for pixel in np.asarray(after)[changed]} == {ink}


def test_the_pastel_family_colours_each_character_some_barely_off_a_light_background(monkeypatch):
    from trainer.render import styled
    from trainer.render.paint import luminance

    seen = []
    real_lay_out = styled.lay_out

    def spy(text, fonts, style, palette, rng):
        layer = real_lay_out(text, fonts, style, palette, rng)
        seen.append((style, palette, layer))
        return layer

    monkeypatch.setattr(styled, "lay_out", spy)
    draws(build_drawer("pastel", TextSpec(LETTERS, (4, 12))), 60, seed=12)
    contrasts = []
    for style, palette, layer in seen:
        assert style.colour_per_char and palette.kind == "pastel" and luminance(palette.background) >= 225
        assert len({glyph.colour for glyph in layer.glyphs}) > 1
        contrasts += [abs(luminance(glyph.colour) - luminance(palette.background)) for glyph in layer.glyphs]
    assert 30 <= min(contrasts) < 45 and max(contrasts) > 150, (min(contrasts), max(contrasts))
    assert 0.1 < sum(c < 60 for c in contrasts) / len(contrasts) < 0.35, "some characters pale, most not"


def test_the_styled_familys_hook_for_more_clutter_draws_nothing_so_its_images_stay_as_they_were():
    from trainer.render.styled import StyledRenderer

    rng = random.Random(3)
    state = rng.getstate()
    image = Image.new("RGB", (80, 30), "white")
    StyledRenderer.cross(None, image, rng, 1.0, TextLayer(), pick_style(random.Random(0), 30, 1.0))
    assert rng.getstate() == state and image.getextrema() == ((255, 255),) * 3


def test_the_tangled_mix_holds_the_new_families_and_the_seed_texts():
    drawer = build_drawer("generalist-tangled", TextSpec(GENERALIST_ALPHABET, (1, 12)))
    draws(drawer, 300, seed=4)
    assert set(drawer.drawn) == set(MIXES["generalist-tangled"])
    assert abs(sum(MIXES["generalist-tangled"].values()) - 1) < 1e-9
    texts = dict(zip((family.name for family in drawer.families), drawer.texts))
    assert texts["0.7"].alphabet == texts["0.5"].alphabet != texts["tangled"].alphabet
    assert not set(ARITHMETIC_SYMBOLS) & set(texts["tangled"].alphabet + texts["pastel"].alphabet)
