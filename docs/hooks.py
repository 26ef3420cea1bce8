"""mkdocs hook: render the Sphinx roles of our numpydoc docstrings as links.

The docstrings cross-reference with Sphinx roles (``:func:`ingest```, ``:class:`~marscraters.crs.Grid```),
which mkdocstrings leaves as literal text.  This turns each into code, linked through
mkdocs-autorefs when the target is documented here: a dotted name as it is, a bare name relative to
the module of the API page.  Unresolved targets (numpy, xarray...) stay plain code, without a warning.
"""

from __future__ import annotations

import html
import re

# :role:`name`, :role:`~dotted.name` (shown short) or :role:`title <dotted.name>` (the HTML has &lt; &gt;)
_ROLE = re.compile(
    r":(?:py:)?(?:func|class|data|meth|mod|attr|exc|obj|const):"
    r"<code>(~?)(?:([^<]*?) &lt;)?([\w.]+)(\(\))?(?:&gt;)?</code>"
)


def on_page_content(content: str, page, **kwargs) -> str:
    url = page.file.src_uri
    module = url[len("api/"):-len(".md")] if url.startswith("api/") and url.endswith(".md") else None

    def link(m: re.Match) -> str:
        short, title, name, call = m.group(1) == "~", m.group(2), m.group(3), m.group(4) or ""
        shown = title if title else (name.rsplit(".", 1)[-1] if short else name) + call
        if not name.startswith("marscraters") and module is not None and "." not in name:
            target = f"marscraters.{module}.{name}"
        else:
            target = name
        code = f"<code>{shown if title else html.escape(shown)}</code>"
        return f'<autoref identifier="{html.escape(target)}" optional>{code}</autoref>'

    return _ROLE.sub(link, content)
