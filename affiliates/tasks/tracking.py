"""Tasks for click tracking."""
