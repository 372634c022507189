"""Worker processes for CPU work: the training worker, its frames, and the pool the server keeps."""
