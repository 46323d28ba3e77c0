"""shiptrackd: keeps parcel tracking current."""

__version__ = "0.1.0"
