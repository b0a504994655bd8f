"""Django settings of the shop (``example_project.django_site``), read from the environment that
:mod:`example_project.django_site.serve` sets: ``DJANGO_SITE_DATA`` (folder of the SQLite
database), ``DJANGO_SITE_SOLVE_EVERY``, ``DJANGO_SITE_EVENT_LOG`` (optional), the catalogue's size.
"""

import os
import secrets
from pathlib import Path

DATA = Path(os.environ.get("DJANGO_SITE_DATA", "."))
SECRET_KEY = os.environ.get("DJANGO_SITE_SECRET_KEY") or secrets.token_urlsafe(40)
DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]

INSTALLED_APPS = [
    "django.contrib.sessions",
    "captcha",  # django-simple-captcha: CaptchaStore table, /captcha/image/<key>/
    "example_project.django_site",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "example_project.django_site.views.EventLogMiddleware",
]
ROOT_URLCONF = "example_project.django_site.urls"
TEMPLATES = [{"BACKEND": "django.template.backends.django.DjangoTemplates", "APP_DIRS": True}]
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DATA / "db.sqlite3",
        # The server answers in threads: WAL and immediate transactions let writers queue instead
        # of failing with "database is locked".
        "OPTIONS": {"timeout": 30, "transaction_mode": "IMMEDIATE", "init_command": "PRAGMA journal_mode=WAL;"},
    }
}
SESSION_ENGINE = "django.contrib.sessions.backends.db"
USE_TZ = True
LOGGING = {"version": 1, "disable_existing_loggers": False,
           "loggers": {"django.server": {"level": "WARNING"}, "django.request": {"level": "ERROR"}}}

# The shop: products per category, and pages a session may see per solved captcha (0: no limit).
SHOP_CATEGORIES = int(os.environ.get("DJANGO_SITE_CATEGORIES", "2"))
SHOP_ITEMS_PER_CATEGORY = int(os.environ.get("DJANGO_SITE_ITEMS_PER_CATEGORY", "24"))
SHOP_PAGE_SIZE = 8
SHOP_SOLVE_EVERY = int(os.environ.get("DJANGO_SITE_SOLVE_EVERY", "0"))
SHOP_EVENT_LOG = os.environ.get("DJANGO_SITE_EVENT_LOG") or None
