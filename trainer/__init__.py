"""Trainer for scrapy-captcha models: synthetic data, training, evaluation (``python -m trainer``)."""
