"""``python -m auth_service <command>``: user-auth's own operations."""

import sys

from shopflow_kit.cli import run

from auth_service.config import MODELS, Settings
from auth_service.operations import OPERATIONS

sys.exit(run("auth_service", Settings, MODELS, OPERATIONS))
