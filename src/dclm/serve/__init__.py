"""`dclm serve`: an OpenAI-compatible HTTP server (FastAPI + uvicorn) over a continuous-batching scheduler.

Requests join the running decode batch as soon as a cache slot is free and leave it the step they finish;
every request keeps its own sampling parameters, seed, stop strings and (optionally) LoRA adapter.
"""
