"""The ``drift-assets`` command line: argument parsing in ``app``, one function per command in
``commands``, the end-to-end demo in ``demo``. The only layer that may import every other one."""

from drift_assets.cli.app import main

__all__ = ["main"]
