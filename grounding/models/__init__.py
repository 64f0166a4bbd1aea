"""Models: backbone libraries (OpenAI ``clip``, checkpoint files, open_clip, the toy, …) behind one adapter; contract in ``library.py``."""
