from atvdisk.cli import main

main()
