"""shiptrackctl: steer a running shiptrackd over its control socket (entry point: `main`)."""

from .main import build_parser, main

__all__ = ["build_parser", "main"]
