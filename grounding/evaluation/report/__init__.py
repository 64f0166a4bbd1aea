"""The HTML error-analysis report (``grounding-report``): run loading, thumbnails, figures, Jinja2 page."""
