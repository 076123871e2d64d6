"""``python -m payment_api <command>``: payment-api's own operations."""

import sys

from shopflow_kit.cli import run

from payment_api.config import MODELS, Settings

sys.exit(run("payment_api", Settings, MODELS))
