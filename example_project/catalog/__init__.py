"""The example project's Scrapy package: settings, items and the ``catalog`` spider."""
