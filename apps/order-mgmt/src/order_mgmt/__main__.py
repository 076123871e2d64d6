"""``python -m order_mgmt <command>``: order-mgmt's own operations."""

import sys

from shopflow_kit.cli import run

from order_mgmt.config import MODELS, Settings

sys.exit(run("order_mgmt", Settings, MODELS))
