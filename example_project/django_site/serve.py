"""Serve the Django shop on 127.0.0.1 with Django's own threaded WSGI server; run it in the Django venv.

    .venv-unseen-django/bin/python -m example_project.django_site.serve [--port 0] [--solve-every K]

Creates the SQLite database in ``--data`` (default: a new temporary folder, removed at exit),
applies the migrations (sessions, django-simple-captcha's ``CaptchaStore``), then prints
``serving at http://127.0.0.1:PORT`` (``--port 0``: a free port) and serves until SIGTERM or Ctrl-C.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys
import tempfile
import threading


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m example_project.django_site.serve", description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000, help="0 picks a free port (default: %(default)s)")
    parser.add_argument("--data", help="folder of the SQLite database (default: a temporary one)")
    parser.add_argument("--categories", type=int, default=2)
    parser.add_argument("--items-per-category", type=int, default=24)
    parser.add_argument("--solve-every", type=int, default=0, metavar="K",
                        help="a session must pass the captcha again after K pages (0: once per session)")
    parser.add_argument("--event-log", help="append a JSON line per captcha image served (with its text) and per answer")
    parser.add_argument("--quiet", action="store_true", help="no access log")
    args = parser.parse_args(argv)
    for name in ("categories", "items_per_category"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be at least 1")
    if args.solve_every < 0:
        parser.error("--solve-every must be 0 or more")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    data = args.data or tempfile.mkdtemp(prefix="django-shop-")
    os.environ.update(DJANGO_SETTINGS_MODULE="example_project.django_site.settings", DJANGO_SITE_DATA=data,
                      DJANGO_SITE_CATEGORIES=str(args.categories), DJANGO_SITE_ITEMS_PER_CATEGORY=str(args.items_per_category),
                      DJANGO_SITE_SOLVE_EVERY=str(args.solve_every), DJANGO_SITE_EVENT_LOG=args.event_log or "")
    try:
        import django
    except ImportError:
        raise SystemExit(f"{sys.executable} has no Django: run this in the Django venv (make django-venv)") from None
    django.setup()
    from django.core.management import call_command
    from django.core.servers.basehttp import ThreadedWSGIServer, WSGIRequestHandler, get_internal_wsgi_application

    call_command("migrate", verbosity=0, interactive=False)

    class Handler(WSGIRequestHandler):
        def log_message(self, format: str, *log_args) -> None:
            if not args.quiet:
                super().log_message(format, *log_args)

    server = ThreadedWSGIServer((args.host, args.port), Handler)
    server.set_app(get_internal_wsgi_application())
    # SIGTERM ends serve_forever from another thread (shutdown() waits for the loop).
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    print(f"serving at http://{args.host}:{server.server_address[1]}", flush=True)
    try:
        server.serve_forever(poll_interval=0.1)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if not args.data:
            shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
