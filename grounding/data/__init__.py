"""Data: image decoding, the split registry and one loader per annotation format (ZSGNet CSV, demo, …)."""
