from atvdisk.cli.main import main

main()
