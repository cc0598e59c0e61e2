# Superset configuration for the project's local Superset (superset/setup.ts).
#
# setup.ts points SUPERSET_CONFIG_PATH here and sets ANTENNA_SUPERSET_STATE to
# the state folder (<repo>/.state/superset). Everything Superset keeps (its
# SQLite metadata database, the secret key, logs) lives in that folder, so
# deleting it starts over. The server listens on loopback only: this is a
# developer's and CI's Superset, not a shared deployment.
import os

STATE_DIR = os.environ["ANTENNA_SUPERSET_STATE"]


def _secret_key() -> str:
    # An explicit key wins (a deployment sets it); otherwise setup.ts generated
    # one into the state folder once, so sessions survive restarts.
    key = os.environ.get("SUPERSET_SECRET_KEY")
    if key:
        return key
    with open(os.path.join(STATE_DIR, "secret_key"), encoding="utf-8") as f:
        return f.read().strip()


SECRET_KEY = _secret_key()

# The metadata database: SQLite is enough for one local user and needs no server.
SQLALCHEMY_DATABASE_URI = "sqlite:///" + os.path.join(STATE_DIR, "superset.db")

# Local, loopback-only setup: the REST import and the browser test need no CSRF
# token dance, and Talisman's HTTPS/CSP headers only get in the way on http://.
WTF_CSRF_ENABLED = False
TALISMAN_ENABLED = False
# Login attempts are rate limited by default; tests log in repeatedly.
RATELIMIT_ENABLED = False
AUTH_RATE_LIMITED = False

FEATURE_FLAGS = {
    # Thumbnails need Celery and a headless browser of Superset's own.
    "THUMBNAILS": False,
    "ALERT_REPORTS": False,
    # Imported bundles carry tags only when this is on; ours carry none.
    "TAGGING_SYSTEM": False,
    # Render every chart at once, not only those in view: screenshots and the
    # browser test need the whole dashboard.
    "DASHBOARD_VIRTUALIZATION": False,
}

# No cache server: results are always fresh, which is what tests want.
CACHE_CONFIG = {"CACHE_TYPE": "NullCache"}
DATA_CACHE_CONFIG = {"CACHE_TYPE": "NullCache"}

# Keep Superset from phoning home or showing the welcome tour in screenshots.
SHOW_STACKTRACE = False
CONTENT_SECURITY_POLICY_WARNING = False
