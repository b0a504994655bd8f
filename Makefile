# Two entry points: `make demo` and `make test`. Both create .venv and install what they need.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install system-packages demo test test-scrapy-lowest bundled-weights bundled-onnx gate-weights generalist-weights generalist-gpu-weights generalist-wide-weights generalist-heavy-weights generalist-echo-weights generalist-tangled-weights generalist-mean-weights generalist-fast-weights generalist-fast-seed-weights benchmark benchmark-extra unseen-sets django-venv clean

install: $(VENV)/.installed

# Debian packages the tests and the trainer use: a real Redis for the scrapy-redis test, Chromium
# for the labelling page's browser test, fonts for the synthetic renderer. Installed when apt-get
# can (root on Debian/Ubuntu); elsewhere install them yourself (README, "Development").
SYSTEM_PACKAGES := redis-server chromium chromium-driver fonts-dejavu-core fonts-liberation
# the renderer's fonts (trainer/render/fonts.py: RECIPE_FONT_PACKAGES): serif, sans, mono, condensed, thin to black, handwriting-like
SYSTEM_PACKAGES += fonts-freefont-ttf fonts-urw-base35 fonts-comic-neue fonts-lato fonts-open-sans fonts-crosextra-caladea \
	fonts-crosextra-carlito fonts-inconsolata fonts-linuxlibertine fonts-roboto-unhinted fonts-cantarell

system-packages: $(VENV)/.system-packages

$(VENV)/.system-packages: Makefile
	@mkdir -p $(VENV)
	@if command -v apt-get >/dev/null && [ "$$(id -u)" = 0 ]; then \
		missing=$$(for p in $(SYSTEM_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
		if [ -n "$$missing" ]; then \
			echo "apt-get install $$missing"; \
			apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
		fi; \
	else \
		echo "not root on Debian: install these yourself if missing: $(SYSTEM_PACKAGES)"; \
	fi
	touch $@

$(VENV)/.installed: setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[trainer,test]'
	touch $@

demo: install system-packages
	$(PY) -m example_project.demo

test: install system-packages django-venv
	$(PY) -m pytest
	$(MAKE) --no-print-directory test-scrapy-lowest

# The lowest Scrapy that setup.cfg claims: the middleware's tests again, with Scrapy (and the
# Twisted it pins) from a side folder put first on the path.
SCRAPY_LOWEST := 2.13.4
SCRAPY_LOWEST_DIR := $(VENV)/scrapy-$(SCRAPY_LOWEST)

$(SCRAPY_LOWEST_DIR)/.installed: | install
	$(PY) -m pip install --quiet --target $(SCRAPY_LOWEST_DIR) "scrapy==$(SCRAPY_LOWEST)"
	touch $@

test-scrapy-lowest: $(SCRAPY_LOWEST_DIR)/.installed
	PYTHONPATH=$(SCRAPY_LOWEST_DIR) $(PY) -m pytest -q -p no:cacheprovider tests/test_detection.py tests/test_middleware.py \
		tests/test_hostile_pages.py tests/test_hostile_sessions.py tests/test_learning.py tests/test_model_trial.py \
		tests/test_site_knowledge.py

# Every figure of the README's performance table (about 17 minutes on 2 CPU cores); see benchmarks/.
benchmark: install
	$(PY) -m benchmarks

# The same with ddddocr installed, so that it is measured too.
benchmark-extra: install
	$(PY) -m pip install --quiet -e '.[benchmarks]'
	$(PY) -m benchmarks

# The held-out "unseen styles" sets (benchmarks/unseen/): each captcha package in its own
# .venv-unseen-<name>/, 500 images per style into benchmarks/data/unseen/ (python -m benchmarks
# draws any that are missing too). Test sets only: the bundled model never trains on them.
unseen-sets: install system-packages
	$(PY) -m benchmarks.unseen.sets

# The Django site guarded by django-simple-captcha (example_project/django_site/), in its own venv:
# that package's `captcha` module would shadow the captcha package of .venv. The pins and the stamp
# are benchmarks/unseen's django style's (example_project.django_site.REQUIREMENTS), so the two share it.
DJANGO_VENV := .venv-unseen-django
DJANGO_REQUIREMENTS := django-simple-captcha==0.7.0 django==5.2.19 pillow==13.0.0

django-venv: $(DJANGO_VENV)/.installed

$(DJANGO_VENV)/.installed:
	rm -rf $(DJANGO_VENV)
	$(PYTHON) -m venv $(DJANGO_VENV)
	$(DJANGO_VENV)/bin/pip install --quiet $(DJANGO_REQUIREMENTS)
	printf '%s\n' $(DJANGO_REQUIREMENTS) > $@

clean:
	rm -rf $(VENV) runs *.egg-info

# The bundled model's recipe (README, "The bundled model"): a small CRNN (convolutions 24-32-64-96-96,
# 48 px high) that solves a captcha in under 1 ms on one CPU thread. On a 2-core CPU the 110-minute
# budget ends it (about 52 x 500 steps); on a GPU the 100 x 500 steps do.
# A second, short stage mixes in junk labelled empty (weight 0.05 against 1 + 1: 2.4% of the images; noise,
# one colour, clutter without text: trainer/render/junk.py), so the model reads nothing into an image with no
# text (README, "Security").
BUNDLED_RECIPE := --style mixed --length 4 --resize height --input-height 48 --widths 24,32,64,96,96 --hidden 128 \
	--epochs 100 --steps-per-epoch 500 --max-minutes 110 --lr 3e-3 --warmup 0.05 --batch-size 64 --workers 1 --seed 1
BUNDLED_JUNK_RECIPE := --init runs/bundled/weights.pt --style 0.7:1,0.5:1,junk:0.05 --length 4 --epochs 100 \
	--steps-per-epoch 250 --max-minutes 25 --lr 5e-4 --warmup 0.05 --batch-size 64 --workers 0 --seed 2
# A third stage (60 minutes) leans on 0.7.1, whose errors are nearly all case (v/V, x/X, z/Z), at a lower rate
# still, judged on 4000 validation images so that a tenth of a point shows.
BUNDLED_CASE_RECIPE := --init runs/bundled-junk/weights.pt --style 0.7:2,0.5:1,junk:0.05 --length 4 --epochs 40 \
	--steps-per-epoch 250 --val-size 4000 --max-minutes 60 --lr 3e-4 --warmup 0.05 --batch-size 64 --workers 1 --seed 5

# $(call train_run,NAME,RECIPE): `trainer train` into runs/NAME, resuming from its checkpoint if it has one.
train_run = $(PY) -m trainer train --out runs/$(1) $(2) $$(test -f runs/$(1)/checkpoint.pt && echo --resume)
# $(call train_stage,NAME,RECIPE): the same, skipped once finished (runs/NAME/finished), for a stage that
# the next one starts from.
train_stage = test -f runs/$(1)/finished || { $(call train_run,$(1),$(2)) && touch runs/$(1)/finished; }

bundled-weights: install
	$(call train_stage,bundled,$(BUNDLED_RECIPE))
	$(call train_stage,bundled-junk,$(BUNDLED_JUNK_RECIPE))
	$(call train_run,bundled-case,$(BUNDLED_CASE_RECIPE))
	cp runs/bundled-case/weights.pt scrapy_captcha/weights/default.pt
	$(MAKE) --no-print-directory bundled-onnx

# The bundled models for onnxruntime (the plain install's backend), each NAME.onnx exported from
# NAME.pt; tests/test_backends.py fails while the two disagree.
bundled-onnx: install
	for weights in scrapy_captcha/weights/*.pt scrapy_captcha/weights/gate/*.pt; do \
		$(PY) -m trainer export $$weights --out $${weights%.pt}.onnx || exit 1; done

# The style gate of the bundled route (CAPTCHA_WEIGHTS = "auto", README "The bundled route"): which
# of the default model and the generalist reads an image. About 6 to 8 minutes on 2 CPU cores; our
# renderer's images only.
GATE_RECIPE := --images 32000 --epochs 5 --seed 1

gate-weights: install
	$(PY) -m trainer gate --out runs/gate $(GATE_RECIPE)
	mkdir -p scrapy_captcha/weights/gate
	cp runs/gate/weights.pt scrapy_captcha/weights/gate/style.pt
	$(PY) -m trainer export scrapy_captcha/weights/gate/style.pt --out scrapy_captcha/weights/gate/style.onnx

# The generalist's recipe (README, "The generalist model"), in three stages on 2 CPU cores.
# Stage 1 (150 min): our renderer's families and both library styles, easy to hard (--curriculum),
# read 48 px high keeping the aspect ratio. Stage 2 (at most 120 min): from stage 1's weights, the
# learning rate cools down on a mix leaning on the seed's styles (--style generalist-final).
# Stage 3 (at most 125 min): from stage 2's weights, a second, gentler cool-down leaning harder on
# the seed's styles, 0.5.0 above all (--style generalist-seed).
# Run it again after an interruption: each stage resumes from its checkpoint, a finished stage is
# kept. It never replaces a bundled model: check the figures first (README), then copy
# runs/generalist-seed/weights.pt yourself.
GENERALIST_MODEL := --alphabet generalist --length 1-12 --max-length 12 --resize height --input-height 48 \
	--hidden 192 --epochs 60 --steps-per-epoch 250 --val-size 1000 --batch-size 64 --workers 1
GENERALIST_RECIPE := --style generalist $(GENERALIST_MODEL) --curriculum 0.1:0.5 --lr 3e-3 --warmup 0.05 \
	--seed 1 --max-minutes 150
GENERALIST_FINAL_RECIPE := --init runs/generalist/weights.pt --style generalist-final $(GENERALIST_MODEL) \
	--lr 1e-3 --warmup 0.03 --seed 2 --max-minutes 120
GENERALIST_SEED_RECIPE := --init runs/generalist-final/weights.pt --style generalist-seed $(GENERALIST_MODEL) \
	--epochs 200 --lr 5e-4 --warmup 0.03 --seed 4 --max-minutes 125

generalist-weights: install system-packages
	$(call train_stage,generalist,$(GENERALIST_RECIPE))
	$(call train_stage,generalist-final,$(GENERALIST_FINAL_RECIPE))
	$(call train_run,generalist-seed,$(GENERALIST_SEED_RECIPE))

# Stages 4 to 6 (README, "The generalist model"), on one GPU beside 16 CPU cores: 14 processes draw
# the images, 256 to a batch, each stage a short one-cycle schedule from the last one's weights:
# the broad mix again (4), the seed-leaning mix (5), the final mix (6). The shipped generalist is
# stage 6's weights; as above, copy them yourself once the figures hold. It needs stage 3's weights.
GENERALIST_GPU_MODEL := --alphabet generalist --length 1-12 --max-length 12 --resize height --input-height 48 \
	--hidden 192 --epochs 40 --steps-per-epoch 250 --val-size 2000 --batch-size 256 --workers 14 --warmup 0.05 \
	--device cuda --no-progress
GENERALIST_GPU_STAGES := generalist-gpu-broad:runs/generalist-seed:generalist:1.5e-3:11:8.2 \
	generalist-gpu-seed:runs/generalist-gpu-broad:generalist-seed:5e-4:12:8.2 \
	generalist-gpu-final:runs/generalist-gpu-seed:generalist-final:4e-4:13:6.3

generalist-gpu-weights: install system-packages
	for stage in $(GENERALIST_GPU_STAGES); do set -- $$(echo $$stage | tr : ' '); \
		test -f runs/$$1/finished || { $(PY) -m trainer train --out runs/$$1 --init $$2/weights.pt --style $$3 \
			--lr $$4 --seed $$5 --max-minutes $$6 $(GENERALIST_GPU_MODEL) \
			$$(test -f runs/$$1/checkpoint.pt && echo --resume) && touch runs/$$1/finished; } || exit 1; done

# Stage 7 (README, "The generalist model"), 90 minutes on 2 CPU cores from stage 6's weights: with the
# route reading the library's styles by the default model, the generalist leans on the broad families
# again, with tumbling, scattered characters among them (--style generalist-wide). The shipped
# generalist is its best epoch's weights; as above, copy them yourself once the figures hold.
GENERALIST_WIDE_RECIPE := --init runs/generalist-gpu-final/weights.pt --style generalist-wide $(GENERALIST_MODEL) \
	--lr 7e-4 --warmup 0.05 --seed 21 --max-minutes 90 --no-progress

generalist-wide-weights: install system-packages
	$(call train_run,generalist-wide,$(GENERALIST_WIDE_RECIPE))

# Stage 8 (README, "The generalist model"), 75 minutes on 2 CPU cores from stage 7's weights, the same
# mix drawn by the renderer that since makes a fifth of solid text heavier, a tenth thinner and 15% of
# texts fill the image edge to edge. As above, copy the weights yourself once the figures hold.
GENERALIST_HEAVY_RECIPE := --init runs/generalist-wide/weights.pt --style generalist-wide $(GENERALIST_MODEL) \
	--lr 6e-4 --warmup 0.05 --seed 22 --max-minutes 75 --no-progress

generalist-heavy-weights: install system-packages
	$(call train_run,generalist-heavy,$(GENERALIST_HEAVY_RECIPE))

# Stage 9 (README, "The generalist model"), 60 minutes on 2 CPU cores from stage 8's weights: the same mix,
# in bfloat16 autocast with each drawn image trained on twice and two drawing processes (--precision bf16
# --echo 2 --workers 2): about twice the steps a float32 minute gave (benchmarks/train_speed.py). As
# above, copy the weights yourself once the figures hold.
GENERALIST_ECHO_RECIPE := --init runs/generalist-heavy/weights.pt --style generalist-wide $(GENERALIST_MODEL) \
	--epochs 40 --steps-per-epoch 500 --workers 2 --precision bf16 --echo 2 --lr 5e-4 --warmup 0.05 --seed 23 \
	--max-minutes 60 --no-progress

generalist-echo-weights: install system-packages
	$(call train_run,generalist-echo,$(GENERALIST_ECHO_RECIPE))

# Stage 10 (README, "The generalist model"), 75 minutes on 2 CPU cores from stage 9's weights: the same
# settings on the mix with clutter in the text's own ink and weight and characters of many colours, some
# pale (--style generalist-tangled). As above, copy the weights yourself once the figures hold.
GENERALIST_TANGLED_RECIPE := --init runs/generalist-echo/weights.pt --style generalist-tangled $(GENERALIST_MODEL) \
	--epochs 40 --steps-per-epoch 500 --workers 2 --precision bf16 --echo 2 --lr 4e-4 --warmup 0.05 --seed 41 \
	--max-minutes 75 --no-progress

generalist-tangled-weights: install system-packages
	$(call train_run,generalist-tangled,$(GENERALIST_TANGLED_RECIPE))

# The shipped generalist: the mean of stage 9's and stage 10's weights, tensor by tensor (README, "Stage 10").
# Run generalist-echo-weights and generalist-tangled-weights first; then copy runs/generalist-mean/weights.pt
# to scrapy_captcha/weights/generalist.pt and run bundled-onnx, once the figures hold.
generalist-mean-weights: install
	$(PY) -m trainer average runs/generalist-echo/weights.pt runs/generalist-tangled/weights.pt --out runs/generalist-mean/weights.pt

# The generalist from scratch in one run of 130 minutes on 2 CPU cores (README, "The generalist model",
# "Within 2.5 hours"): stage 7's broad mix, easy to hard, in bfloat16 with each drawn image trained on
# twice. Resumes after an interruption (--max-minutes counts the time before it too). As above, copy the
# weights yourself once the figures hold.
GENERALIST_FAST_RECIPE := --style generalist-wide $(GENERALIST_MODEL) --epochs 200 --steps-per-epoch 500 \
	--workers 2 --precision bf16 --echo 2 --curriculum 0.1:0.5 --lr 3e-3 --warmup 0.05 --seed 31 \
	--max-minutes 130 --no-progress

generalist-fast-weights: install system-packages
	$(call train_run,generalist-fast,$(GENERALIST_FAST_RECIPE))

# Its seed-leaning cool-down, 18 minutes from those weights (run generalist-fast-weights first; 148 minutes in
# all; README, "Within 2.5 hours").
GENERALIST_FAST_SEED_RECIPE := --init runs/generalist-fast/weights.pt --style generalist-final $(GENERALIST_MODEL) \
	--epochs 40 --steps-per-epoch 500 --workers 2 --precision bf16 --echo 2 --lr 5e-4 --warmup 0.05 --seed 32 \
	--max-minutes 18 --no-progress

generalist-fast-seed-weights: install system-packages
	$(call train_run,generalist-fast-seed,$(GENERALIST_FAST_SEED_RECIPE))

# Fixed test sets (captcha 0.7.1 draws from `secrets`, so a test set must be saved to disk).
data/test-0.7.1: | install
	$(PY) -m trainer generate $@ --count 2000 --seed 7071 --style 0.7

.venv-captcha05/.installed:
	$(PYTHON) -m venv .venv-captcha05
	.venv-captcha05/bin/pip install --quiet captcha==0.5.0 pillow==9.5.0
	touch $@

data/test-0.5.0: .venv-captcha05/.installed
	.venv-captcha05/bin/python benchmarks/legacy_captcha_set.py $@ --count 2000 --seed 50
