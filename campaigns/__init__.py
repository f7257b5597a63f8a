"""rebook's domain: config, clients and visits, segments, content and delivery.

Nothing in here knows about the scheduler, the web server or the command line;
those live in ``jobs`` and call into this package.
"""
