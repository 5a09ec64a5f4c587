"""Interactive exploration of attribution cubes in JupyterLab.

The Python side (this package) encodes a cube once; the front-end is plain ES modules
and CSS in the top-level ``widgets/`` folder (no build step, nothing from a CDN), loaded
by anywidget. The same front-end runs in the standalone HTML that
:meth:`Explorer.save_html` writes.
"""

from .explorer import Explorer

__all__ = ["Explorer"]
