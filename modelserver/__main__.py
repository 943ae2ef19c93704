"""``python -m modelserver --port=8500 --rest_api_port=8501 --model_config_file=models/models.config``."""

from __future__ import annotations

import sys

from modelserver.process.cli import main

if __name__ == "__main__":
    sys.exit(main())
