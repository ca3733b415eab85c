import sys

from drift_assets.cli import main

sys.exit(main())
