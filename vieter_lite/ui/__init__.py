"""The dashboard: static files (HTML, JS modules, CSS) served by web/ui.py under /ui/."""
