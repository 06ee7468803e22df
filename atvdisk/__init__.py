"""atvdisk: rebuild the internal disk of an Apple TV (1st generation) for OpenELEC."""

__version__ = "0.1.0"
