"""The example Scrapy project (catalog/), the demo site and the demo command; not part of the installed package."""
