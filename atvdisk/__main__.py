# The handlers first: a Ctrl-C while the CLI is imported must not print a traceback.
from atvdisk.cli.launch import main

main()
