"""Kernel tests: boot the real Debian kernel under qemu against disk images.

The harness API is documented in :mod:`.harness` (``run_guest``); asset preparation (the one
set-up entry point, ``python -m tests.kernel.assets``) in :mod:`.assets`.
"""
