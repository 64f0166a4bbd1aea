"""Models: load CLIP backbones (OpenAI ``clip``; the analytic toy; random-weight builders) behind one adapter."""
