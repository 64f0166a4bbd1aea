"""Methods: image + phrase → box. Each method is one module registered by name (ours, denseclip, crop_rank, …)."""
