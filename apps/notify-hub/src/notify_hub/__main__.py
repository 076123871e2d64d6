"""``python -m notify_hub <command>``: notify-hub's own operations."""

import sys

from shopflow_kit.cli import run

from notify_hub.config import MODELS, Settings

sys.exit(run("notify_hub", Settings, MODELS))
