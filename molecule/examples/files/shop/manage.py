"""The example's "python manage.py migrate --noinput": records that it ran, in the shared media directory."""
import datetime
import os
import sys

if sys.argv[1:2] == ["migrate"]:
    os.makedirs("media", exist_ok=True)
    with open(os.path.join("media", "migrations.log"), "a", encoding="utf-8") as handle:
        handle.write("%s %s\n" % (datetime.datetime.now(datetime.timezone.utc).isoformat(), os.environ.get("DJANGO_SETTINGS_MODULE", "")))
    print("No migrations to apply.")
else:
    sys.exit("manage.py: only migrate is known")
