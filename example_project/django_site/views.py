"""The shop's views: a small catalogue behind a django-simple-captcha form, the way a Django site
sets one up (a ``forms.Form`` with a ``CaptchaField``, validated by the package, case-insensitive).

A session that has not passed the captcha (or whose ``SHOP_SOLVE_EVERY`` pages ran out) asking for
a catalogue page is redirected to ``/verify/?next=<path>``; a right answer marks the session and
redirects back, a wrong one shows the form again with its error and a fresh captcha (the package
renders a new key on every render and deletes a key once it is tried).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import threading

from captcha.fields import CaptchaField
from captcha.models import CaptchaStore
from django import forms
from django.conf import settings
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme, urlencode

from example_project.catalogue import Product, build_catalogue, category_names

# Pages each session (by key) may see before its next captcha. Kept in the server's memory under a
# lock, not in the session's data: a session's data is saved last-writer-wins, so requests arriving
# together would all spend the same page.
_pages_left: dict[str, int] = {}
_gate_lock = threading.Lock()


def categories() -> list[str]:
    return category_names(settings.SHOP_CATEGORIES)


@functools.cache
def catalogue() -> dict[int, Product]:
    """The demo shop's products (ids from 1, deterministic)."""
    return build_catalogue(settings.SHOP_CATEGORIES, settings.SHOP_ITEMS_PER_CATEGORY)


class VerifyForm(forms.Form):
    captcha = CaptchaField(label="Type the letters you see")


def captcha_required(view):
    """Send a session without pages left to the captcha form, and count the page otherwise."""

    @functools.wraps(view)
    def gated(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        key = request.session.session_key
        with _gate_lock:
            left = _pages_left.get(key) if key else None
            allowed = left is not None and (not settings.SHOP_SOLVE_EVERY or left > 0)
            if allowed and settings.SHOP_SOLVE_EVERY:
                _pages_left[key] = left - 1
        if not allowed:
            return redirect("/verify/?" + urlencode({"next": request.get_full_path()}))
        return view(request, *args, **kwargs)

    return gated


@captcha_required
def home(request: HttpRequest) -> HttpResponse:
    return render(request, "shop/home.html", {"categories": categories()})


@captcha_required
def listing(request: HttpRequest, category: str) -> HttpResponse:
    if category not in categories():
        raise Http404("no such category")
    products = [p for p in catalogue().values() if p.category == category]
    size = settings.SHOP_PAGE_SIZE
    pages = -(-len(products) // size)
    try:
        number = int(request.GET.get("page", "1"))
    except ValueError:
        raise Http404("bad page number") from None
    if not 1 <= number <= pages:
        raise Http404("no such page")
    return render(request, "shop/listing.html", {
        "category": category, "products": products[(number - 1) * size:number * size], "number": number, "pages": pages,
        "previous": number - 1 if number > 1 else None, "next": number + 1 if number < pages else None})


@captcha_required
def product(request: HttpRequest, product_id: int) -> HttpResponse:
    try:
        item = catalogue()[product_id]
    except KeyError:
        raise Http404("no such product") from None
    return render(request, "shop/product.html", {"product": item})


def verify(request: HttpRequest) -> HttpResponse:
    """The captcha form: GET shows it, POST checks it with the package's own validation."""
    next_path = request.POST.get("next") or request.GET.get("next") or "/"
    if not url_has_allowed_host_and_scheme(next_path, allowed_hosts={request.get_host()}) or next_path.startswith("/verify"):
        next_path = "/"
    if request.method == "POST":
        form = VerifyForm(request.POST)
        passed = form.is_valid()
        log_event("answer", key=request.POST.get("captcha_0", ""), answer=request.POST.get("captcha_1", ""), correct=passed)
        if passed:
            request.session.cycle_key()  # a new session key after passing, as after a login
            request.session["captcha_passed"] = True
            request.session.save()
            with _gate_lock:
                _pages_left[request.session.session_key] = settings.SHOP_SOLVE_EVERY
            return redirect(next_path)
    else:
        form = VerifyForm()
    return render(request, "shop/verify.html", {"form": form, "next": next_path})


_log_lock = threading.Lock()


def log_event(event: str, **fields) -> None:
    """One JSON line in ``SHOP_EVENT_LOG`` (when set): what the benchmarks and tests compare the crawl with."""
    if not settings.SHOP_EVENT_LOG:
        return
    line = (json.dumps({"event": event, **fields}) + "\n").encode()
    with _log_lock:
        descriptor = os.open(settings.SHOP_EVENT_LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(descriptor, line)
        finally:
            os.close(descriptor)


class EventLogMiddleware:
    """With ``SHOP_EVENT_LOG`` set, logs each captcha image served with its text (the site knows it anyway).

    The image view stays the package's own; this only looks at its response.
    """

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        match = request.resolver_match
        if settings.SHOP_EVENT_LOG and match is not None and match.url_name == "captcha-image" and response.status_code == 200:
            store = CaptchaStore.objects.filter(hashkey=match.kwargs["key"]).first()
            log_event("image", key=match.kwargs["key"], sha1=hashlib.sha1(response.content).hexdigest(),
                      text=store.challenge if store else None)
        return response
