"""rebook's domain: config, clients and visits, segments, content and delivery.

Nothing in here knows about the scheduler, the web server or the command line;
those live in ``jobs`` and call into this package. The layers, each allowed to
import only those before it: ``config``/``errors``, ``store``, ``content``
(never the database), ``clients``, ``delivery``.
"""
