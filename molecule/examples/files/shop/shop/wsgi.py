"""A WSGI app where the example's gunicorn command looks for one (shop.wsgi:application).

/health/ answers "ok"; every other path answers JSON naming the settings module, whether the secret from
shared/.env reached the process, and the process ID.
"""
import importlib
import json
import os

SETTINGS = importlib.import_module(os.environ.get("DJANGO_SETTINGS_MODULE", "shop.settings.production"))


def application(environ, start_response):
    if environ.get("PATH_INFO") == "/health/":
        body = b"ok"
        kind = "text/plain"
    else:
        body = json.dumps({"app": "shop", "settings": SETTINGS.__name__, "secret_set": bool(SETTINGS.SECRET_KEY),
                           "pid": os.getpid()}).encode()
        kind = "application/json"
    start_response("200 OK", [("Content-Type", kind), ("Content-Length", str(len(body)))])
    return [body]
