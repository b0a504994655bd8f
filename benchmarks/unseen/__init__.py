"""Held-out "unseen styles": test sets drawn by other captcha packages, and the benchmark that reads them."""
