"""Figures, one module per model family; `common` holds the shared ones (curves, confusion matrix)."""
