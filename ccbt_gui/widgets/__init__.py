"""Custom widgets: progress delegate, pieces bar, charts, details tabs, sidebar."""
