"""What a client reads: templates, articles, rendering, the MIME message, unsubscribe links.

Owns the Jinja sandbox (``templating``, ``inlining``, ``render``), ``articles``,
``message`` and ``composing`` (bytes to send), ``context`` (the plain views a
template sees) and ``tokens``. Never touches the database: it is handed views.
"""
