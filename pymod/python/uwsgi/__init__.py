"""uWSGI's Python API, implemented in Rust by uwsgi-rs.

This file only loads the extension. The module *is* the compiled ``uwsgi.uwsgi``: it
takes this package's place in ``sys.modules``, so ``import uwsgi`` gives the very object
the uwsgi-rs server embeds, and ``uwsgi.spooler = f`` sets the attribute where the
Rust code reads it. ``uwsgi.testing`` is a submodule of the extension.
"""

import sys as _sys

from . import uwsgi as _extension

_sys.modules[__name__] = _extension
