"""``python -m catalog_api <command>``: catalog-api's own operations."""

import sys

from shopflow_kit.cli import Operation, run

from catalog_api.config import MODELS, Settings
from catalog_api.seed import seed, seed_arguments

OPERATIONS = (Operation("seed", "load the seed catalog (idempotent)", seed, seed_arguments),)

sys.exit(run("catalog_api", Settings, MODELS, OPERATIONS))
