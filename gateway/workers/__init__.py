"""Background work: the rq worker, its jobs and the per-provider send rate."""
