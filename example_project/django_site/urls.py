"""The shop's URLs: the catalogue, the captcha page, and django-simple-captcha's own image views."""

from django.urls import include, path

from . import views

urlpatterns = [
    path("", views.home, name="home"),
    path("catalog/<slug:category>", views.listing, name="listing"),
    path("item/<int:product_id>", views.product, name="product"),
    path("verify/", views.verify, name="verify"),
    path("captcha/", include("captcha.urls")),
]
