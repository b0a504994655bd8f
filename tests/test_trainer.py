"""The trainer end to end on tiny data: generate, train (CRNN, seed VGG, synthetic stream, two processes),
resume, fine-tune, time budget, early stopping, evaluate; atomic generation; data errors named by file.

Every run is a few steps on a few hundred images or fewer, so the whole module takes well under a minute
of CPU time on two cores.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from PIL import Image

from scrapy_captcha.codec import SEED_ALPHABET, Codec
from scrapy_captcha.solver import Solver
from scrapy_captcha.model import ModelConfig
from scrapy_captcha.weights import load_weights, save_weights
from trainer import cli
from trainer.data import DataError, scan_folder
from trainer.generate import GeneratorSpec, generate_dataset
from trainer.render import GENERALIST_ALPHABET

COUNT = 200
FAST = ["--workers", "0", "--no-progress", "--seed", "0"]
NAME = re.compile(rf"^(\d+)-([{re.escape(SEED_ALPHABET)}]{{4}})\.png$")


pytestmark = pytest.mark.usefixtures("one_thread")

def run_trainer(*args: str, timeout: float = 120, **kwargs) -> subprocess.CompletedProcess:
    """``python -m trainer ARGS`` in a child process, as a user runs it."""
    return subprocess.run([sys.executable, "-m", "trainer", *args], capture_output=True, text=True, timeout=timeout, **kwargs)


def train(capsys, *args: str) -> tuple[int, str, str]:
    """``python -m trainer train ARGS`` in this process (no start-up cost); returns (code, stdout, stderr)."""
    code = cli.main(["train", *FAST, *args])
    out, err = capsys.readouterr()
    return code, out, err


def metrics(run: Path) -> dict:
    return json.loads((run / "metrics.json").read_text())


def assert_png(path: Path) -> None:
    assert path.stat().st_size > 1000, path
    with Image.open(path) as image:
        assert image.format == "PNG"
        image.verify()


def copy_images(source: Path, target: Path, count: int) -> Path:
    target.mkdir(parents=True)
    for path in sorted(source.iterdir(), key=lambda p: int(p.name.split("-")[0]))[:count]:
        shutil.copy(path, target / path.name)
    return target


def write_png(path: Path, size: tuple[int, int] = (160, 60)) -> Path:
    Image.new("L", size, 255).save(path)
    return path


# -- generate ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data") / "train"
    result = run_trainer("generate", str(out), "--count", str(COUNT), "--seed", "1", "--workers", "2")
    assert result.returncode == 0, result.stderr
    assert f"wrote {COUNT} images to {out}" in result.stdout
    return out


@pytest.fixture(scope="module")
def small(dataset, tmp_path_factory) -> Path:
    """30 of the generated images: 27 to train on, 3 held out for validation."""
    return copy_images(dataset, tmp_path_factory.mktemp("data") / "small", 30)


def test_generate_writes_seed_style_names(dataset):
    names = sorted(p.name for p in dataset.iterdir())
    assert len(names) == COUNT
    matches = [NAME.match(name) for name in names]
    assert all(matches), [n for n, m in zip(names, matches) if not m]
    assert sorted(int(m.group(1)) for m in matches) == list(range(1, COUNT + 1))
    assert len({m.group(2) for m in matches}) > COUNT * 0.9  # random labels, not one repeated
    with Image.open(dataset / names[0]) as image:
        assert image.size == (160, 60)
    assert not [p for p in dataset.parent.iterdir() if p.name.startswith(".")], "temporary folders left behind"


def test_generate_refuses_an_existing_folder_without_force(tmp_path, capsys):
    out = tmp_path / "set"
    assert cli.main(["generate", str(out), "--count", "3", "--workers", "1", "--length", "5-6"]) == 0
    first = sorted(p.name for p in out.iterdir())
    assert len(first) == 3 and all(re.match(r"^\d+-\w{5,6}\.png$", name) for name in first)
    capsys.readouterr()

    assert cli.main(["generate", str(out), "--count", "2", "--workers", "1"]) == 2
    assert "exists and is not empty" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == first

    assert cli.main(["generate", str(out), "--count", "2", "--workers", "1", "--force"]) == 0
    assert len(list(out.iterdir())) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["set"]


@dataclass(frozen=True)
class FailingSpec(GeneratorSpec):
    """Draws ``fail_after`` images, then fails the way ``error`` says."""

    fail_after: int = 5
    error: str = "crash"

    def generator(self, rng):
        real, spec = super().generator(rng), self

        class Failing:
            drawn = 0

            def draw(self):
                if self.drawn == spec.fail_after:
                    raise KeyboardInterrupt if spec.error == "interrupt" else RuntimeError("drawing failed")
                self.drawn += 1
                return real.draw()

        return Failing()


@pytest.mark.parametrize("error", ["crash", "interrupt"])
def test_interrupted_generation_leaves_nothing_behind(tmp_path, error):
    expected = KeyboardInterrupt if error == "interrupt" else RuntimeError
    with pytest.raises(expected):
        generate_dataset(tmp_path / "out", 20, FailingSpec(error=error), workers=1, progress=False)
    assert list(tmp_path.iterdir()) == []

    old = tmp_path / "old"  # --force over an existing set: the old set survives a failed run
    generate_dataset(old, 2, workers=1, progress=False)
    before = sorted(p.name for p in old.iterdir())
    with pytest.raises(expected):
        generate_dataset(old, 20, FailingSpec(error=error), workers=1, force=True, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]
    assert sorted(p.name for p in old.iterdir()) == before


def test_ctrl_c_during_parallel_generation_leaves_nothing_behind(tmp_path):
    out = tmp_path / "out"
    # a test run started in the background (`make test &`) inherits SIGINT ignored; a terminal's Ctrl-C never is
    process = subprocess.Popen([sys.executable, "-m", "trainer", "generate", str(out), "--count", "5000", "--workers", "2"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and process.poll() is None:
            partial = [p for p in tmp_path.iterdir() if p.name.startswith(".out.partial-")]
            if partial and any(partial[0].iterdir()):
                break
            time.sleep(0.05)
        assert partial and process.poll() is None, "generation never got going"
        os.killpg(process.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole process group
        _, err = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


# -- train ------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained(dataset, tmp_path_factory) -> tuple[Path, str]:
    """A CRNN trained for 2 epochs of 4 steps on the generated set (180 to train, 20 held out)."""
    out = tmp_path_factory.mktemp("runs") / "crnn"
    code = cli.main(["train", *FAST, "--data", str(dataset), "--out", str(out), "--epochs", "2", "--batch-size", "45"])
    assert code == 0
    return out


def test_training_outputs_are_complete_and_well_formed(trained, dataset):
    assert sorted(p.name for p in trained.iterdir()) == [
        "checkpoint.pt", "curves.png", "metrics.json", "predictions.png", "weights.pt"]
    weights = load_weights(trained / "weights.pt")
    assert weights.config.arch == "crnn" and weights.config.alphabet == SEED_ALPHABET
    assert weights.summary["trained_with"] == "scrapy-captcha trainer"
    assert weights.summary["train_data"] == str(dataset)
    assert "sequence_accuracy" in weights.summary["validation"]

    data = metrics(trained)
    assert [h["epoch"] for h in data["history"]] == [1, 2]
    assert [h["step"] for h in data["history"]] == [4, 8]
    for entry in data["history"]:
        for key in ("train_loss", "val_loss", "sequence_accuracy", "sequence_accuracy_case_insensitive",
                    "character_accuracy", "lr", "minutes"):
            assert isinstance(entry[key], float), key
        assert entry["count"] == COUNT // 10
        assert 0 <= entry["sequence_accuracy"] <= entry["sequence_accuracy_case_insensitive"] <= 1
    assert data["history"][1]["train_loss"] < data["history"][0]["train_loss"]
    assert data["best"]["epoch"] in (1, 2)
    assert data["final"]["count"] == COUNT // 10
    assert data["config"]["model"]["arch"] == "crnn"
    assert_png(trained / "curves.png")
    assert_png(trained / "predictions.png")

    solver = Solver.from_path(trained / "weights.pt")
    image = next(dataset.glob("1-*.png")).read_bytes()
    assert set(solver.solve(image).text) <= set(SEED_ALPHABET)


def test_evaluate_prints_a_table_and_writes_json(trained, dataset, tmp_path, capsys):
    report = tmp_path / "eval.json"
    assert cli.main(["evaluate", "--data", str(dataset), "--weights", str(trained / "weights.pt"), "--json", str(report)]) == 0
    table = capsys.readouterr().out
    assert "captcha accuracy" in table and "character accuracy" in table and "latency" in table
    result = json.loads(report.read_text())
    assert result["count"] == COUNT
    for key in ("sequence_accuracy", "sequence_accuracy_case_insensitive", "character_accuracy"):
        assert isinstance(result[key], float) and 0 <= result[key] <= 1
    assert result["sequence_accuracy"] <= result["sequence_accuracy_case_insensitive"]
    assert isinstance(result["confusions"], list) and result["latency_ms_mean"] > 0


def test_evaluate_names_a_bad_weights_file(dataset, tmp_path, capsys):
    bad = tmp_path / "weights.pt"
    bad.write_text("not weights")
    assert cli.main(["evaluate", "--data", str(dataset), "--weights", str(bad)]) == 2
    assert f"error: {bad}: not a readable PyTorch file" in capsys.readouterr().err


def test_resume_continues_from_the_checkpoint(trained, dataset, tmp_path, capsys):
    run = shutil.copytree(trained, tmp_path / "run")
    code, out, _ = train(capsys, "--data", str(dataset), "--out", str(run), "--epochs", "3", "--batch-size", "45", "--resume")
    assert code == 0
    assert "resumed at step 8" in out
    history = metrics(run)["history"]
    assert [h["epoch"] for h in history] == [1, 2, 3]
    assert [h["step"] for h in history] == [4, 8, 12]
    assert history[:2] == metrics(trained)["history"]


def test_resume_of_a_finished_run_trains_no_further(trained, dataset, tmp_path, capsys):
    run = shutil.copytree(trained, tmp_path / "run")
    code, out, _ = train(capsys, "--data", str(dataset), "--out", str(run), "--epochs", "2", "--batch-size", "45", "--resume")
    assert code == 0 and "resumed at step 8" in out
    assert metrics(run)["history"] == metrics(trained)["history"]


def test_resume_without_a_checkpoint_is_refused(small, tmp_path, capsys):
    code, _, err = train(capsys, "--data", str(small), "--out", str(tmp_path / "fresh"), "--resume")
    assert code == 2
    assert "no checkpoint at" in err and "fresh" in err


def test_seed_vgg_refuses_labels_of_another_length(small, tmp_path, capsys):
    folder = copy_images(small, tmp_path / "mixed", 4)
    odd = write_png(folder / "99-abc.png")
    code, _, err = train(capsys, "--data", str(folder), "--out", str(tmp_path / "vgg"), "--arch", "seed-vgg")
    assert code == 2
    assert odd.name in err and "is not 4 characters long" in err


def test_fine_tuning_starts_from_the_given_weights(trained, small, tmp_path, capsys):
    start = load_weights(trained / "weights.pt")
    out = tmp_path / "tuned"
    # a vanishing learning rate: the convolutions must still hold the starting weights afterwards
    code, stdout, _ = train(capsys, "--data", str(small), "--out", str(out), "--epochs", "1", "--batch-size", "9",
                            "--init", str(trained / "weights.pt"), "--lr", "1e-12", "--no-augment")
    assert code == 0, stdout
    tuned = load_weights(out / "weights.pt")
    assert tuned.config == start.config
    assert tuned.summary["init"]["fine_tuned_from"] == str(trained / "weights.pt")
    for name in ("features.0.weight", "classify.weight"):
        assert torch.allclose(tuned.state_dict[name], start.state_dict[name], atol=1e-6), name

    code, _, err = train(capsys, "--data", str(small), "--out", str(tmp_path / "x"), "--init", str(tmp_path / "nope.pt"))
    assert code == 2 and "nope.pt' does not exist" in err


def test_frames_per_column_widens_the_head_of_the_given_weights(trained, small, tmp_path, capsys):
    start = load_weights(trained / "weights.pt")
    out = tmp_path / "widened"
    code, stdout, _ = train(capsys, "--data", str(small), "--out", str(out), "--epochs", "1", "--batch-size", "9",
                            "--init", str(trained / "weights.pt"), "--frames-per-column", "2", "--lr", "1e-12", "--no-augment")
    assert code == 0, stdout
    widened = load_weights(out / "weights.pt")
    assert widened.config.frames_per_column == 2 and start.config.frames_per_column == 1
    assert torch.allclose(widened.state_dict["classify.weight"], start.state_dict["classify.weight"].repeat(2, 1), atol=1e-6)

    code, stdout, _ = train(capsys, "--data", str(small), "--out", str(tmp_path / "fresh"), "--epochs", "1", "--batch-size", "9",
                            "--frames-per-column", "2")
    assert code == 0, stdout
    assert load_weights(tmp_path / "fresh" / "weights.pt").config.frames_per_column == 2


def test_max_minutes_ends_a_long_schedule_cooled_down(small, tmp_path, capsys):
    out = tmp_path / "budget"
    code, stdout, _ = train(capsys, "--data", str(small), "--out", str(out), "--epochs", "100000", "--batch-size", "9",
                            "--max-minutes", "0.05")
    assert code == 0, stdout
    data = metrics(out)
    history = data["history"]
    assert history and history[-1]["step"] < 100000 * 3
    assert history[-1]["lr"] < 0.25 * data["config"]["lr"], "the one-cycle schedule should end within the budget"
    assert (out / "weights.pt").exists() and (out / "curves.png").exists()


def test_patience_stops_training_early(small, tmp_path, capsys):
    out = tmp_path / "patient"
    code, stdout, _ = train(capsys, "--data", str(small), "--out", str(out), "--epochs", "50", "--batch-size", "9",
                            "--patience", "1")
    assert code == 0
    data = metrics(out)
    assert len(data["history"]) < 50
    assert len(data["history"]) == data["best"]["epoch"] + 1
    assert "stopping early: no improvement for 1 epochs" in stdout


def test_seed_vgg_trains_and_solves(small, tmp_path, capsys):
    out = tmp_path / "vgg"
    code, stdout, _ = train(capsys, "--data", str(small), "--out", str(out), "--arch", "seed-vgg", "--epochs", "1",
                            "--batch-size", "9")
    assert code == 0, stdout
    assert "seed-vgg, 65,418,984 parameters" in stdout
    assert metrics(out)["history"][0]["step"] == 3
    weights = load_weights(out / "weights.pt")
    assert (weights.config.arch, weights.config.max_length) == ("seed-vgg", 4)
    prediction = Solver(weights).solve(next(small.iterdir()).read_bytes())
    assert len(prediction.text) == 4 and len(prediction.char_confidences) == 4


def test_training_on_the_synthetic_stream(tmp_path, capsys):
    out = tmp_path / "stream"
    code, stdout, _ = train(capsys, "--out", str(out), "--epochs", "2", "--steps-per-epoch", "2", "--batch-size", "8",
                            "--val-size", "10", "--length", "3-5", "--workers", "1")
    assert code == 0, stdout
    history = metrics(out)["history"]
    assert [h["step"] for h in history] == [2, 4]
    assert all(h["count"] == 10 for h in history)
    assert_png(out / "predictions.png")


GENERALIST = ["--style", "generalist", "--alphabet", "generalist", "--length", "1-12", "--max-length", "12",
              "--resize", "height", "--input-height", "40", "--hidden", "32", "--batch-size", "8", "--val-size", "12"]


def test_the_generalist_path_trains_resumes_and_reads_any_width(tmp_path, capsys):
    """Our renderer's mix, variable widths at a fixed height, a curriculum, then --resume."""
    out = tmp_path / "generalist"
    code, stdout, _ = train(capsys, "--out", str(out), *GENERALIST, "--curriculum", "0.2:0.5", "--epochs", "2",
                            "--steps-per-epoch", "2")
    assert code == 0, stdout
    weights = load_weights(out / "weights.pt")
    assert (weights.config.resize, weights.config.height, weights.config.max_length) == ("height", 40, 12)
    saved = metrics(out)["config"]
    assert saved["curriculum"] == [0.2, 0.5] and saved["synthetic"]["style"] == "generalist"
    solver = Solver(weights)
    wide, narrow = Image.new("RGB", (600, 60), "white"), Image.new("RGB", (70, 30), "white")
    assert len(solver.solve_batch([wide, narrow])) == 2  # any size, no squashing
    code, stdout, _ = train(capsys, "--out", str(out), *GENERALIST, "--curriculum", "0.2:0.5", "--epochs", "3",
                            "--steps-per-epoch", "2", "--resume")
    assert code == 0 and "resumed at step 4" in stdout
    assert [h["step"] for h in metrics(out)["history"]] == [2, 4, 6]


def test_the_curriculum_rises_from_start_to_one_over_the_ramp():
    from trainer.data import Curriculum

    curriculum = Curriculum(start=0.2, ramp=0.5, total_images=1000)
    assert [round(curriculum.difficulty(n), 3) for n in (0, 250, 500, 900)] == [0.2, 0.6, 1.0, 1.0]
    resumed = Curriculum(start=0.2, ramp=0.5, total_images=1000, images_before=250)
    assert resumed.difficulty(0) == curriculum.difficulty(250)
    timed = Curriculum(start=0.0, ramp=1.0, total_images=10**9, max_seconds=100, started_at=time.time() - 50)
    assert 0.49 < timed.difficulty(0) < 0.6  # half the time budget spent: half way
    with pytest.raises(ValueError, match="curriculum"):
        Curriculum(start=0.2, ramp=0.0)


def test_the_stream_groups_similar_widths_into_a_batch():
    from trainer.data import SyntheticStream

    config = ModelConfig(alphabet=GENERALIST_ALPHABET, height=32, resize="height", max_length=12)
    spec = GeneratorSpec(style="styled", alphabet=GENERALIST_ALPHABET, lengths=(1, 12))
    stream = iter(SyntheticStream(spec, config, seed=0, batch_size=8, pool_batches=4))
    batches = [[next(stream)[0].shape[-1] for _ in range(8)] for _ in range(8)]
    spread = [max(b) - min(b) for b in batches]
    widths = sorted(w for b in batches for w in b)
    # sorted runs: a batch spans far less than the whole range of widths drawn
    assert max(spread) < widths[-1] - widths[0]
    assert sum(spread) < 0.5 * len(batches) * (widths[-1] - widths[0])


def test_bad_training_options_are_named(capsys):
    for args, words in [(["--curriculum", "2:0.5"], "START:RAMP"), (["--style", "fancy"], "unknown renderer family"),
                        (["--difficulty", "1.5"], "between 0 and 1")]:
        with pytest.raises(SystemExit):
            cli.main(["train", *args])
        assert words in capsys.readouterr().err


def test_data_parallel_training_with_torchrun(small, tmp_path):
    out = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
               "-m", "trainer", "train", *FAST, "--data", str(small), "--out", str(out), "--epochs", "1", "--batch-size", "4"]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "2 process(es)" in result.stdout
    assert result.stdout.count("best epoch") == 1  # only rank 0 validates and writes
    # 27 training images shared by 2 processes: 14 each (the sampler pads), 3 full batches of 4
    assert [h["step"] for h in metrics(out)["history"]] == [3]
    assert load_weights(out / "weights.pt").config.arch == "crnn"
    assert_png(out / "curves.png")


# -- data errors ------------------------------------------------------------------------------------


@pytest.fixture
def messy(tmp_path) -> Path:
    """Two good images and one of each kind of bad file."""
    folder = tmp_path / "messy"
    folder.mkdir()
    write_png(folder / "1-Ab3x.png")
    write_png(folder / "Zz99_from_site.png")
    write_png(folder / "2-Ab-x.png")  # '-' is not in the alphabet
    write_png(folder / "3-lOIo.png")  # the seed's pool leaves out look-alikes
    write_png(folder / "4-abcdefghjk.png")  # longer than the model reads
    (folder / "5-Abcd.png").write_text("<html>not an image</html>")
    write_png(folder / "nolabel.png")
    (folder / ".hidden.png").write_text("ignored")
    return folder


EXPECTED_PROBLEMS = {
    "2-Ab-x.png": "outside the alphabet: '-'",
    "3-lOIo.png": "outside the alphabet: 'IOlo'",
    "4-abcdefghjk.png": "longer than 8 characters",
    "5-Abcd.png": "not an image",
    "nolabel.png": "no label in the file name",
}


def test_bad_files_are_each_named_with_the_reason(messy):
    with pytest.raises(DataError) as info:
        scan_folder(messy, Codec(), max_length=8)
    problems = {path.name: reason for path, reason in info.value.problems}
    assert problems.keys() == EXPECTED_PROBLEMS.keys()
    for name, reason in EXPECTED_PROBLEMS.items():
        assert reason in problems[name], name
        assert re.search(rf"{re.escape(str(messy / name))}: .*{re.escape(reason)}", str(info.value)), name
    assert str(info.value).startswith("5 unusable file(s):")


def test_allow_skip_warns_and_keeps_the_good_files(messy):
    with pytest.warns(UserWarning, match="5 skipped file") as caught:
        samples = scan_folder(messy, Codec(), max_length=8, allow_skip=True)
    assert sorted((p.name, label) for p, label in samples) == [("1-Ab3x.png", "Ab3x"), ("Zz99_from_site.png", "Zz99")]
    assert all(name in str(caught[0].message) for name in EXPECTED_PROBLEMS)


def test_train_stops_on_bad_files_unless_skipping_is_allowed(messy, tmp_path, capsys):
    code, _, err = train(capsys, "--data", str(messy), "--out", str(tmp_path / "run"), "--epochs", "1")
    assert code == 2
    assert "error: 5 unusable file(s)" in err and all(name in err for name in EXPECTED_PROBLEMS)
    assert not (tmp_path / "run" / "weights.pt").exists()

    for i in range(10):  # enough good images for a step and a validation set
        write_png(messy / f"{10 + i}-Good.png")
    with pytest.warns(UserWarning, match="5 skipped file"):
        code, stdout, _ = train(capsys, "--data", str(messy), "--out", str(tmp_path / "run"), "--epochs", "1",
                                "--batch-size", "4", "--allow-skip")
    assert code == 0, stdout
    assert metrics(tmp_path / "run")["history"][0]["count"] == 1  # a tenth of 12 good images


def test_evaluate_reports_bad_files_and_can_skip_them(trained, messy, tmp_path, capsys):
    weights = str(trained / "weights.pt")
    assert cli.main(["evaluate", "--data", str(messy), "--weights", weights]) == 2
    err = capsys.readouterr().err
    assert all(name in err for name in ("5-Abcd.png", "nolabel.png"))
    assert "2-Ab-x.png" not in err and "3-lOIo.png" not in err  # characters the model lacks are scored, as misses
    report = tmp_path / "eval.json"
    with pytest.warns(UserWarning, match="skipped"):
        assert cli.main(["evaluate", "--data", str(messy), "--weights", weights, "--allow-skip", "--json", str(report)]) == 0
    result = json.loads(report.read_text())
    assert result["count"] == 5  # the 10-character label and the outside-the-alphabet ones are fine for evaluation
    assert result["labels_outside_alphabet"] == 2


def test_labels_file_variants(tmp_path):
    folder = tmp_path / "listed"
    folder.mkdir()
    for name in ("a.png", "b.png", "c.png", "d.png", "e.png", "unlisted.png"):
        write_png(folder / name)
    (folder / "labels.tsv").write_text("a.png\tAb3x\nb.png\tno-way\n\nc.png\t\nd.png\tXy\ne.png\tlOng\ngone.png\tAb3x\n")
    with pytest.raises(DataError) as info:
        scan_folder(folder, Codec(), max_length=8)
    problems = {path.name: reason for path, reason in info.value.problems}
    assert problems == {
        "b.png": "label 'no-way' has characters outside the alphabet: '-o'",
        "c.png": "label is empty",
        "e.png": "label 'lOng' has characters outside the alphabet: 'Ol'",
        "unlisted.png": "not listed in labels.tsv",
        "gone.png": "listed in labels.tsv but not found",
    }
    with pytest.warns(UserWarning):
        samples = scan_folder(folder, Codec(), max_length=8, allow_skip=True)
    assert sorted((p.name, label) for p, label in samples) == [("a.png", "Ab3x"), ("d.png", "Xy")]

    (folder / "labels.tsv").write_text("a.png\tAb3x\nb.png Ab3x\n")
    with pytest.raises(DataError, match=r"labels.tsv: line 2 is not 'file<TAB>label'"):
        scan_folder(folder, Codec(), max_length=8, allow_skip=True)


def test_an_empty_or_missing_folder_is_an_error(tmp_path):
    with pytest.raises(DataError, match="is not a folder"):
        scan_folder(tmp_path / "missing", Codec(), max_length=8)
    with pytest.raises(DataError, match="holds no labelled images"):
        scan_folder(tmp_path, Codec(), max_length=8)


def test_weights_error_from_training_is_reported(tmp_path, small, capsys):
    bad = tmp_path / "bad.pt"
    save_weights(bad, torch.nn.Linear(1, 1), ModelConfig())
    code, _, err = train(capsys, "--data", str(small), "--out", str(tmp_path / "x"), "--init", str(bad))
    assert code == 2
    assert f"error: {bad}: weights do not fit" in err
