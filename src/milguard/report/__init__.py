"""Reports built on the analysis layer: :func:`milguard.report.audit.audit` (JSON schema in its
module docstring) and, rendered from the same dict, the HTML page (``milguard.report.html``)."""
