"""Local Vercel Queues for `make dev` and tests (see SPIKE.md)."""
