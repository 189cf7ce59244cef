"""What DJANGO_SETTINGS_MODULE names in the example; the app reads SECRET_KEY from the environment file."""
import os

SECRET_KEY = os.environ.get("SECRET_KEY", "")
