"""Evaluation: the runner (loop, resume, write), the evaluator (IoU, hit, summary), merge, tables and figures."""
