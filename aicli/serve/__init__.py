"""The HTTP service behind `aicli serve` (FastAPI): imported only by that command.

app.py builds the app (`create_app(cfg)`); each router owns one concern (generate, openai_api,
health, metrics); state.py holds the per-app state, admission.py decides who gets in (auth,
in-flight cap) for the middleware; errors.py is the one table from AicliError to HTTP status;
runner.py starts uvicorn with its workers.
"""
